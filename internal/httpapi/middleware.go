package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/theaterscriptpro/tsp/internal/tracing"
	"github.com/theaterscriptpro/tsp/problem"
)

// reqInfo is what the outer middleware learns about a request from the
// inner layers: the path pattern of the route that served it (without the
// method: "/api/scripts/{id}", "/" for an unknown path, "unmatched" when
// refused before routing) and the cause of a 5xx.
// One pointer in the context, so copies of the request made by inner
// middleware still write to it.
type reqInfo struct {
	id    string
	route string
	err   error
	// clientIP is the client as TRUSTED_PROXIES resolves it, resolved
	// once: the access log and the limiters both want it.
	clientIP netip.Addr
}

type infoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	i, _ := ctx.Value(infoKey{}).(*reqInfo)
	return i
}

// clientIP returns the request's client address (clientip, behind
// TRUSTED_PROXIES), resolved once per request by observe.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	if i := infoFrom(r.Context()); i != nil {
		return i.clientIP
	}
	return s.ips.ClientIP(r)
}

// RequestID returns the request id of ctx (the X-Request-ID the response
// carries), or "".
func RequestID(ctx context.Context) string {
	if i := infoFrom(ctx); i != nil {
		return i.id
	}
	return ""
}

// MaxRequestIDLen is the longest X-Request-ID taken from a client.
const MaxRequestIDLen = 64

// saneRequestID reports whether a client's X-Request-ID may be reused: 1 to
// 64 characters of [A-Za-z0-9._-], so it cannot forge log lines or headers.
func saneRequestID(s string) bool {
	if len(s) == 0 || len(s) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpMetrics are the server's own Prometheus figures.
type httpMetrics struct {
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to serve a request, by method, route pattern and status code.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight",
			Help: "Requests being served now.",
		}),
	}
}

func (m *httpMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.duration, m.inFlight}
}

// metricMethod bounds the method label: a client may send any token.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// observe is the outermost layer: request id, panic recovery, one access
// log line and the latency histogram for every request.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{id: r.Header.Get("X-Request-ID"), route: "unmatched", clientIP: s.ips.ClientIP(r)}
		if !saneRequestID(info.id) {
			info.id = newRequestID()
		}
		w.Header().Set("X-Request-ID", info.id)
		span := trace.SpanFromContext(r.Context()) // otelhttp's, when tracing is on
		if span.IsRecording() {
			span.SetAttributes(attribute.String(tracing.AttrRequestID, info.id))
		}
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		s.metrics.inFlight.Inc()
		defer func() {
			s.metrics.inFlight.Dec()
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic serving request", "request_id", info.id, "route", info.route, "panic", p)
				if sw.status == 0 {
					problem.Error(sw, http.StatusInternalServerError, "internal error")
				}
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			d := time.Since(start)
			if span.IsRecording() {
				// The route is known only now, after the mux chose it.
				span.SetName(metricMethod(r.Method) + " " + info.route)
				span.SetAttributes(attribute.String("http.route", info.route))
			}
			s.metrics.duration.WithLabelValues(metricMethod(r.Method), info.route, strconv.Itoa(status)).Observe(d.Seconds())
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			if !s.log.Enabled(r.Context(), level) {
				return
			}
			// The path is not logged: it may carry ids, never secrets, but
			// the route pattern is what groups requests. Query strings,
			// headers and bodies (tokens, passwords) are never logged.
			attrs := []slog.Attr{
				slog.String("method", metricMethod(r.Method)),
				slog.String("route", info.route),
				slog.Int("status", status),
				slog.Float64("duration_ms", float64(d.Microseconds())/1000),
				slog.String("request_id", info.id),
				slog.Int64("bytes", sw.bytes),
				// The client as the limiters and session records see it
				// (clientip, behind TRUSTED_PROXIES).
				slog.String("client_ip", info.clientIP.String()),
			}
			if c := sw.Header().Get("X-Cache"); c != "" {
				attrs = append(attrs, slog.String("cache", c))
			}
			if info.err != nil {
				attrs = append(attrs, slog.String("error", info.err.Error()))
			}
			s.log.LogAttrs(r.Context(), level, "request", attrs...)
		}()
		if r.ContentLength > MaxBodyBytes {
			// Refuse before any handler or limiter spends work on it.
			problem.Write(sw, problem.Details{Status: http.StatusRequestEntityTooLarge,
				Detail: "the body must be at most " + strconv.Itoa(MaxBodyBytes) + " bytes"})
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// routed marks the request with the path pattern that serves it, for logs,
// metrics and spans; the mux's own r.Pattern is set on the request the mux gets, which
// outer layers may not hold.
func routed(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := infoFrom(r.Context()); info != nil {
			info.route = pattern
		}
		h.ServeHTTP(w, r)
	})
}
