package httpapi

import (
	"context"
	"net/http"
	"sync"
)

// healthz answers 200 while the process can serve HTTP at all: liveness.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	private(w)
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz checks Redis (PING) and the database at once, each within
// ReadyTimeout, and answers 503 naming what is down. The Redis check goes
// through the client's circuit breaker, so an open breaker answers at once.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.deps.ReadyTimeout)
	defer cancel()
	var redisErr, dbErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); redisErr = s.rdb.Ping(ctx) }()
	go func() { defer wg.Done(); dbErr = s.deps.Database.Ping(ctx) }()
	wg.Wait()
	body := map[string]string{"redis": "ok", "database": "ok"}
	status := http.StatusOK
	if redisErr != nil {
		body["redis"] = "down"
		status = http.StatusServiceUnavailable
	}
	if dbErr != nil {
		body["database"] = "down"
		status = http.StatusServiceUnavailable
	}
	private(w)
	if status != http.StatusOK {
		w.Header().Set("Retry-After", "1")
	}
	s.writeJSON(w, r, status, body)
}
