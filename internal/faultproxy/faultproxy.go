// Package faultproxy puts a fault-injecting TCP proxy between a client
// under test and its server (Redis, PostgreSQL) on loopback, so a test can
// add latency, throttle bandwidth, cut or hang connections and take the
// server "off the network" without touching the server process.
//
//	func TestSlowRedis(t *testing.T) {
//		srv := redistest.StartServer(t)
//		px := faultproxy.Start(t, srv.Addr)
//		cfg := redistest.Config(t)
//		cfg.Addrs = []string{px.Addr()}
//		rdb := redistest.Connect(t, cfg)
//
//		px.Latency(500 * time.Millisecond) // every reply arrives 500ms late
//		// ... calls now time out with redisx.ErrUnavailable ...
//		px.Reset() // back to a clean wire
//	}
//
// Faults stack (latency plus a bandwidth limit is fine), apply to open and
// new connections alike, and last until Reset. The proxy never drops bytes
// on a connection it keeps open: like TCP, it holds them (Hang) or closes
// the connection (CutConnections, Down). Dropping bytes silently would
// desynchronise a pipelined protocol in a way no real network does.
//
// Why not Shopify's toxiproxy as a library: v2.5.0 panics (index out of
// range in ToxicLink.AddToxic) when a toxic is added after one was removed
// while a connection was closing, which fault tests do all the time, and it
// logs through zerolog's global logger. This proxy is small enough to read
// in one sitting and is tested on its own.
package faultproxy

import (
	"net"
	"sync"
	"testing"
	"time"
)

const (
	// dialTimeout bounds reaching the upstream for each accepted client.
	dialTimeout = 2 * time.Second
	// chunkSize is the most one read takes; queued bounds how many chunks a
	// direction holds before the reader stops (TCP-like back pressure).
	chunkSize = 32 << 10
	queued    = 16
	// pacingSlice is how finely a bandwidth limit is applied.
	pacingSlice = 20 * time.Millisecond
)

// faults is the set of faults in force; a copy is read under Proxy.mu.
type faults struct {
	latency time.Duration // added to every server-to-client chunk
	rate    int           // bytes per second each way; 0 = unlimited
	hung    bool          // forward nothing
	// changed is closed (and replaced) whenever the faults change, so
	// waiting writers re-read them: Reset releases held bytes at once.
	changed chan struct{}
}

// Proxy is a fault-injecting TCP proxy on a loopback port. Its methods must
// be called from the test's goroutine (they fail the test on misuse) and
// are safe to call while traffic flows.
type Proxy struct {
	tb       testing.TB
	upstream string
	addr     string

	mu     sync.Mutex
	ln     net.Listener // nil while Down
	f      faults
	links  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup // every goroutine the proxy started
}

// Start starts a proxy on a free 127.0.0.1 port that forwards to upstream
// (host:port). It is closed at the test's cleanup.
func Start(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	if host, port, err := net.SplitHostPort(upstream); err != nil || host == "" || port == "" {
		tb.Fatalf("faultproxy: upstream %q: want host:port", upstream)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("faultproxy: listen: %v", err)
	}
	p := &Proxy{
		tb:       tb,
		upstream: upstream,
		addr:     ln.Addr().String(),
		f:        faults{changed: make(chan struct{})},
		links:    map[*link]struct{}{},
	}
	p.serve(ln)
	tb.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address (127.0.0.1:port) for the client to dial.
// It stays the same across Down and Up.
func (p *Proxy) Addr() string { return p.addr }

// Upstream returns the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// Latency delays every reply (server to client) by d, so each round trip
// takes d longer; requests pass at once, as on a link whose return path is
// slow. Latency(0) removes the delay; bytes it held go at once.
func (p *Proxy) Latency(d time.Duration) {
	p.tb.Helper()
	if d < 0 {
		p.tb.Fatalf("faultproxy: negative latency %v", d)
	}
	p.change(func(f *faults) { f.latency = d })
}

// Bandwidth limits each connection to kbps kilobytes (1024 bytes) per second
// in each direction. Bandwidth(0) removes the limit.
func (p *Proxy) Bandwidth(kbps int) {
	p.tb.Helper()
	if kbps < 0 || kbps > 1<<30 {
		p.tb.Fatalf("faultproxy: bandwidth %d KiB/s out of range", kbps)
	}
	p.change(func(f *faults) { f.rate = kbps * 1024 })
}

// Hang stops forwarding in both directions on every connection, open and
// new, without closing any: the client's writes succeed and its reads wait,
// as when a network path silently black-holes. New connections are
// accepted and hang too. Bytes are held, not dropped, and flow again in
// order after Reset, as TCP would deliver them; a connection whose client
// gives up while hung is torn down after Reset, once its bytes are out.
func (p *Proxy) Hang() {
	p.tb.Helper()
	p.change(func(f *faults) { f.hung = true })
}

// CutConnections resets every established connection at once, in both
// directions, whatever is in flight: a command sent but not yet answered is
// cut mid-command. New connections are accepted right after, with the
// faults in force.
func (p *Proxy) CutConnections() {
	p.tb.Helper()
	p.mu.Lock()
	links := p.takeLinks()
	p.mu.Unlock()
	for _, l := range links {
		l.reset()
	}
}

// Down takes the server off the network: open connections are reset and
// new ones refused until Up.
func (p *Proxy) Down() {
	p.tb.Helper()
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	links := p.takeLinks()
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, l := range links {
		l.reset()
	}
}

// Up accepts connections again after Down, on the same address.
func (p *Proxy) Up() {
	p.tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil || p.closed {
		return
	}
	var ln net.Listener
	var err error
	// The port was ours a moment ago; on Linux it can be bound again at
	// once (Go sets SO_REUSEADDR), the retries cover a slow close.
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serveLocked(ln)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.tb.Fatalf("faultproxy: listen again on %s: %v", p.addr, err)
}

// Reset ends every fault: latency, bandwidth limit and hang are removed
// (held bytes are delivered) and the proxy is brought Up.
func (p *Proxy) Reset() {
	p.tb.Helper()
	p.change(func(f *faults) { *f = faults{changed: f.changed} })
	p.Up()
}

// Close stops the proxy, resets every connection and waits for all of its
// goroutines to end. Start registers it for cleanup; calling it again is
// harmless.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	ln := p.ln
	p.ln = nil
	links := p.takeLinks()
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, l := range links {
		l.reset()
	}
	p.wg.Wait()
}

// change applies edit to the faults and wakes every waiting writer.
func (p *Proxy) change(edit func(*faults)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	edit(&p.f)
	close(p.f.changed)
	p.f.changed = make(chan struct{})
}

func (p *Proxy) faults() faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.f
}

// takeLinks empties the link set and returns what was in it; p.mu is held.
func (p *Proxy) takeLinks() []*link {
	out := make([]*link, 0, len(p.links))
	for l := range p.links {
		out = append(out, l)
	}
	clear(p.links)
	return out
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serveLocked(ln)
}

// serveLocked starts the accept loop for ln; p.mu is held.
func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return // closed by Down or Close
			}
			p.wg.Add(1)
			go p.connect(ln, client)
		}
	}()
}

// connect dials the upstream for one client and starts forwarding. The
// dial happens off the accept loop so a slow upstream never blocks accepts.
func (p *Proxy) connect(ln net.Listener, client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.upstream, dialTimeout)
	if err != nil {
		// As a dead server looks to the client: connected, then closed.
		client.Close()
		return
	}
	l := &link{p: p, client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed || p.ln != ln {
		// Down, Up or Close happened while dialing: this connection was
		// accepted by a listener that no longer stands.
		p.mu.Unlock()
		l.reset()
		return
	}
	p.links[l] = struct{}{}
	p.wg.Add(4)
	p.mu.Unlock()
	up := make(chan chunk, queued)
	down := make(chan chunk, queued)
	go l.read(client, up)
	go l.write(server, up, false)
	go l.read(server, down)
	go l.write(client, down, true)
}

// chunk is bytes read from one side with the time they arrived.
type chunk struct {
	b  []byte
	at time.Time
}

// link is one proxied connection: a client and its upstream connection.
type link struct {
	p              *Proxy
	client, server net.Conn
	once           sync.Once
	done           chan struct{} // closed when the link is torn down
}

// read copies from src into q until src fails, then closes q so the writer
// delivers what is queued and tears the link down.
func (l *link) read(src net.Conn, q chan<- chunk) {
	defer l.p.wg.Done()
	defer close(q)
	buf := make([]byte, chunkSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			// The chunk outlives this read: it gets a copy of its own, sized
			// to what came (a reply is often a few bytes, not 32 KiB).
			select {
			case q <- chunk{append([]byte(nil), buf[:n]...), time.Now()}:
			case <-l.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// write sends what q holds to dst, applying the faults in force; only
// replies (toClient) get the latency.
func (l *link) write(dst net.Conn, q <-chan chunk, toClient bool) {
	defer l.p.wg.Done()
	defer l.close()
	var next time.Time // pacing: when the next byte may go under a rate limit
	for c := range q {
		for len(c.b) > 0 {
			f, ok := l.wait(c.at, toClient, next)
			if !ok {
				return
			}
			n := len(c.b)
			if f.rate > 0 {
				n = min(n, max(1, int(int64(f.rate)*int64(pacingSlice)/int64(time.Second))))
			}
			if _, err := dst.Write(c.b[:n]); err != nil {
				return
			}
			c.b = c.b[n:]
			if f.rate > 0 {
				start := time.Now()
				if next.After(start) {
					start = next
				}
				next = start.Add(time.Duration(int64(n) * int64(time.Second) / int64(f.rate)))
			} else {
				next = time.Time{}
			}
		}
	}
}

// wait blocks until bytes that arrived at `at` may be written under the
// faults in force, re-reading them whenever they change. It returns false
// when the link is torn down.
func (l *link) wait(at time.Time, toClient bool, next time.Time) (faults, bool) {
	for {
		f := l.p.faults()
		var until time.Time
		switch {
		case f.hung:
			select {
			case <-f.changed:
				continue
			case <-l.done:
				return f, false
			}
		case toClient && f.latency > 0:
			until = at.Add(f.latency)
		}
		if f.rate > 0 && next.After(until) {
			until = next
		}
		d := time.Until(until)
		if d <= 0 {
			select {
			case <-l.done:
				return f, false
			default:
				return f, true
			}
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return f, true
		case <-f.changed:
			t.Stop()
		case <-l.done:
			t.Stop()
			return f, false
		}
	}
}

// close tears the link down gracefully (FIN) once either side has ended.
func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		l.client.Close()
		l.server.Close()
		l.p.mu.Lock()
		delete(l.p.links, l)
		l.p.mu.Unlock()
	})
}

// reset tears the link down abruptly (RST), as a dropped connection is
// seen by both peers.
func (l *link) reset() {
	for _, c := range []net.Conn{l.client, l.server} {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	l.close()
}
