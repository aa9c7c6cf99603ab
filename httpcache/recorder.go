package httpcache

import (
	"bytes"
	"net/http"
)

// recorder buffers the handler's response so the cache can decide whether
// to store it before anything reaches the client. A response that grows
// past the route's MaxBodyBytes, or that the handler flushes, streams
// through to the client as it comes and is not stored.
type recorder struct {
	w        http.ResponseWriter
	header   http.Header // the handler's own headers, apart from any set by outer middleware
	status   int
	body     bytes.Buffer
	max      int
	streamed bool
	onStream func(http.Header)
}

func newRecorder(w http.ResponseWriter, max int, onStream func(http.Header)) *recorder {
	return &recorder{w: w, header: http.Header{}, max: max, onStream: onStream}
}

func (b *recorder) Header() http.Header { return b.header }

// WriteHeader records the status. Informational (1xx) responses are
// dropped: they cannot be replayed and a client must not depend on them.
func (b *recorder) WriteHeader(code int) {
	if b.status != 0 || code >= 100 && code < 200 {
		return
	}
	b.status = code
}

func (b *recorder) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	if b.streamed {
		return b.w.Write(p)
	}
	if b.body.Len()+len(p) > b.max {
		b.stream()
		return b.w.Write(p)
	}
	return b.body.Write(p)
}

func (b *recorder) WriteString(s string) (int, error) {
	if b.streamed || b.body.Len()+len(s) > b.max {
		return b.Write([]byte(s))
	}
	b.WriteHeader(http.StatusOK)
	return b.body.WriteString(s)
}

// Flush streams the response from here on: a handler that flushes wants
// its bytes on the wire now, which a stored copy cannot give it.
func (b *recorder) Flush() { _ = b.FlushError() }

// FlushError is Flush for http.ResponseController.
func (b *recorder) FlushError() error {
	b.WriteHeader(http.StatusOK)
	if !b.streamed {
		b.stream()
	}
	return http.NewResponseController(b.w).Flush()
}

func (b *recorder) statusOr200() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

func (b *recorder) stream() {
	b.streamed = true
	h := b.w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	b.onStream(h)
	b.w.WriteHeader(b.statusOr200())
	if b.body.Len() > 0 {
		_, _ = b.w.Write(b.body.Bytes())
	}
	b.body = bytes.Buffer{}
}

// writeTo sends a buffered response that is not stored, as the handler
// wrote it.
func (b *recorder) writeTo(w http.ResponseWriter, xcache, name, status string) {
	h := w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	setCacheHeaders(h, name, xcache, status)
	w.WriteHeader(b.statusOr200())
	if b.body.Len() > 0 {
		_, _ = w.Write(b.body.Bytes())
	}
}

// discard is the ResponseWriter of background refreshes: nobody waits for
// their response; only the stored entry matters.
type discard struct{ h http.Header }

func newDiscard() *discard                           { return &discard{h: http.Header{}} }
func (d *discard) Header() http.Header               { return d.h }
func (d *discard) WriteHeader(int)                   {}
func (d *discard) Write(p []byte) (int, error)       { return len(p), nil }
func (d *discard) WriteString(s string) (int, error) { return len(s), nil }
