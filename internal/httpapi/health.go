package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/theaterscriptpro/tsp/problem"
	"github.com/theaterscriptpro/tsp/redisx"
)

// healthz answers 200 while the process can serve HTTP at all: liveness.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	private(w)
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// readyProbeTTL is how long the readiness probe's key lives.
const readyProbeTTL = 10 * time.Second

// readyz checks Redis and the database at once, each within ReadyTimeout,
// and answers 503 naming what is down. The Redis check is a write, a tiny
// SET with PX of the readiness key, because a PING works on a full Redis:
// an OOM refusal is "redis":"full", any other failure "down". It goes
// through the client's circuit breaker, so an open breaker answers at once.
// After Drain it answers 503 whatever the checks say: the server is
// shutting down.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.deps.ReadyTimeout)
	defer cancel()
	var redisErr, dbErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		redisErr = s.rdb.Do(ctx, s.rdb.B().Set().Key(s.keys.Ready()).Value("1").Px(readyProbeTTL).Build()).Error()
	}()
	go func() { defer wg.Done(); dbErr = s.deps.Database.Ping(ctx) }()
	wg.Wait()
	body := map[string]string{"redis": "ok", "database": "ok"}
	status := http.StatusOK
	switch {
	case errors.Is(redisErr, redisx.ErrOutOfMemory):
		body["redis"] = "full"
		status = http.StatusServiceUnavailable
	case redisErr != nil:
		body["redis"] = "down"
		status = http.StatusServiceUnavailable
	}
	if redisErr != nil {
		if info := infoFrom(r.Context()); info != nil {
			info.err = redisErr // the access line says why: "redis out of memory", …
		}
	}
	if dbErr != nil {
		body["database"] = "down"
		status = http.StatusServiceUnavailable
	}
	detail := "a dependency is down"
	if s.draining.Load() {
		status, detail = http.StatusServiceUnavailable, "shutting down"
	}
	private(w)
	if status == http.StatusOK {
		s.writeJSON(w, r, status, body)
		return
	}
	// Every error is problem+json (API.md); RFC 9457 allows extension
	// members, so the 503 is a problem that carries the same two fields.
	w.Header().Set("Retry-After", "1")
	b, _ := json.Marshal(readyProblem{
		Type: "about:blank", Title: http.StatusText(status), Status: status,
		Detail: detail, Redis: body["redis"], Database: body["database"],
	})
	h := w.Header()
	h.Set("Content-Type", problem.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// readyProblem is the 503 of /readyz.
type readyProblem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Redis    string `json:"redis"`
	Database string `json:"database"`
}
