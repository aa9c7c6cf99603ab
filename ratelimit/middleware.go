package ratelimit

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/theaterscriptpro/tsp/clientip"
	"github.com/theaterscriptpro/tsp/problem"
)

// Header names, in canonical form so setting them needs no canonicalising.
const (
	hdrPolicy     = "Ratelimit-Policy" // RateLimit-Policy
	hdrRateLimit  = "Ratelimit"        // RateLimit
	hdrLimit      = "X-Ratelimit-Limit"
	hdrRemaining  = "X-Ratelimit-Remaining"
	hdrReset      = "X-Ratelimit-Reset"
	hdrRetryAfter = "Retry-After"
)

// headerValues are the parts of the headers fixed for a limiter, formatted
// once.
type headerValues struct {
	policy []string            // RateLimit-Policy: "api";q=600;w=60
	limit  [MaxPolicies]string // X-RateLimit-Limit per policy
}

func (l *Limiter) headerValues() headerValues {
	var h headerValues
	items := make([]string, len(l.policies))
	for i, p := range l.policies {
		items[i] = sfString(p.name) + ";q=" + strconv.Itoa(p.rate.Limit) + ";w=" + strconv.FormatInt(ceilSeconds(p.rate.Window), 10)
		h.limit[i] = strconv.Itoa(p.rate.Limit)
	}
	h.policy = []string{strings.Join(items, ", ")}
	return h
}

// sfString formats a policy name as an RFC 9651 String. Names are checked
// to be a-z 0-9 . _ - by New, so nothing needs escaping.
func sfString(s string) string { return `"` + s + `"` }

// ceilSeconds rounds d up to whole seconds: a client that waits that long
// has waited at least d.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// Middleware limits every request that passes through it: it skips those
// Config.Skip selects, decides with Allow on Config.Key and Config.Cost,
// sets the quota headers, answers a refusal with 429 problem+json and
// Retry-After (503 when FailClosed and Redis is down), and refunds after
// the response when SkipSuccessful or SkipFailed says so.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	if l.off {
		return next
	}
	refunds := l.cfg.SkipSuccessful || l.cfg.SkipFailed
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.cfg.Skip != nil && l.cfg.Skip(r) {
			next.ServeHTTP(w, r)
			return
		}
		key := l.cfg.Key(r)
		if key == "" {
			key = AddrKey(clientip.Peer(r))
		}
		cost := 1
		if l.cfg.Cost != nil {
			if cost = l.cfg.Cost(r); cost < 0 {
				cost = 1
			}
		}
		d, err := l.Allow(r.Context(), key, cost)
		if err != nil { // cannot happen: key and cost were checked above
			d = Decision{Allowed: true, Source: SourceFailOpen}
		}
		if l.cfg.DryRun {
			if !d.Allowed {
				l.metrics.dryRun.Inc()
			}
			next.ServeHTTP(w, r)
			return
		}
		l.setHeaders(w.Header(), &d)
		if !d.Allowed {
			l.refuse(w, &d)
			return
		}
		if !refunds || d.cost == 0 {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		if (status < 400 && l.cfg.SkipSuccessful) || (status >= 400 && l.cfg.SkipFailed) {
			// The request may be over; the refund must still happen.
			ctx := context.WithoutCancel(r.Context())
			if err := l.Refund(ctx, d); err != nil {
				l.cfg.Logger.Warn("rate limiter refund failed", "limiter", l.cfg.Name, "error", err.Error())
			}
		}
	})
}

// Handle is Middleware, named as go-limiter and httprate name it.
func (l *Limiter) Handle(next http.Handler) http.Handler { return l.Middleware(next) }

// SetHeaders writes the quota headers of d (per Config.Headers), for
// handlers that call Allow themselves.
func (l *Limiter) SetHeaders(h http.Header, d *Decision) { l.setHeaders(h, d) }

func (l *Limiter) setHeaders(h http.Header, d *Decision) {
	if l.off || l.cfg.Headers == HeadersNone || d.Source == SourceFailOpen || d.Source == SourceFailClosed {
		return
	}
	h[hdrPolicy] = l.hdr.policy
	if d.n == 0 { // a Never refusal: the policies, but no state
		return
	}
	// Every value goes into one buffer and every header's value slice into
	// one backing array: this runs on every request, hits included, and
	// a string and a slice per header were a fifth of a cached hit's
	// allocations.
	var num [20]byte
	var b strings.Builder
	b.Grow(24*d.n + 40)
	for i, s := range d.Policies() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(sfString(s.Name))
		b.WriteString(";r=")
		b.Write(strconv.AppendInt(num[:0], int64(s.Remaining), 10))
		b.WriteString(";t=")
		b.Write(strconv.AppendInt(num[:0], ceilSeconds(s.Reset), 10))
	}
	if l.cfg.Headers != HeadersAll {
		h[hdrRateLimit] = []string{b.String()}
		return
	}
	ends := [4]int{b.Len()}
	p, _ := d.Binding()
	b.Write(strconv.AppendInt(num[:0], int64(p.Limit), 10))
	ends[1] = b.Len()
	b.Write(strconv.AppendInt(num[:0], int64(p.Remaining), 10))
	ends[2] = b.Len()
	// Unix seconds, as the original guide and GitHub send it; from Redis's
	// clock when Redis decided.
	base := d.Time
	if base.IsZero() {
		base = l.cfg.Now()
	}
	reset := base.Add(p.Reset)
	b.Write(strconv.AppendInt(num[:0], (reset.UnixMicro()+999_999)/1_000_000, 10))
	ends[3] = b.Len()
	all := b.String()
	vals := make([]string, 4)
	for i, k := range [4]string{hdrRateLimit, hdrLimit, hdrRemaining, hdrReset} {
		from := 0
		if i > 0 {
			from = ends[i-1]
		}
		vals[i] = all[from:ends[i]]
		h[k] = vals[i : i+1 : i+1]
	}
}

// refuse answers a refusal.
func (l *Limiter) refuse(w http.ResponseWriter, d *Decision) {
	if d.Source == SourceFailClosed {
		w.Header()[hdrRetryAfter] = []string{"1"}
		problem.Write(w, problem.Details{Status: http.StatusServiceUnavailable, Detail: "rate limiting is unavailable; retry shortly"})
		return
	}
	if d.Never {
		problem.Write(w, problem.Details{Status: http.StatusTooManyRequests, Detail: "this request costs more than the rate limit allows; retrying will not help"})
		return
	}
	secs := max(1, ceilSeconds(d.RetryAfter))
	w.Header()[hdrRetryAfter] = []string{strconv.FormatInt(secs, 10)}
	detail := l.cfg.Detail
	if detail == "" {
		detail = "too many requests; retry in " + strconv.FormatInt(secs, 10) + " s"
	}
	problem.Write(w, problem.Details{Status: http.StatusTooManyRequests, Detail: detail})
}

// statusWriter records the status for the refund decision. Unwrap lets
// http.ResponseController reach Flush and deadlines underneath.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 { // 1xx are not the final status
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
