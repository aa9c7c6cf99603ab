// Command theaterd serves the Theater Script Pro API (API.md): it reads its
// configuration from the environment, connects to Redis and the database,
// serves HTTP and, on SIGINT or SIGTERM, drains in-flight requests before
// closing Redis and the database.
//
//	theaterd          # serve
//	theaterd -demo    # load the demo catalogue, then serve
//
// Bad configuration stops it with exit status 2 and one line per bad
// variable on stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/theaterscriptpro/tsp/internal/config"
	"github.com/theaterscriptpro/tsp/internal/demo"
	"github.com/theaterscriptpro/tsp/internal/httpapi"
	"github.com/theaterscriptpro/tsp/internal/logbuf"
	"github.com/theaterscriptpro/tsp/internal/sqlstore"
	"github.com/theaterscriptpro/tsp/redisx"
	"github.com/theaterscriptpro/tsp/session"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK     = 0
	exitFail   = 1 // could not start or serve
	exitConfig = 2 // bad flags or configuration
)

// run is main with its surroundings passed in, so tests can call it.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("theaterd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demoFlag := fs.Bool("demo", false, "load the demo catalogue into the database, then serve")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "theaterd: unexpected argument %q\n", fs.Arg(0))
		return exitConfig
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		// One line per bad variable, each naming it; never a password.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "theaterd: config:", line)
		}
		return exitConfig
	}
	// One JSON line per request, written in batches: a write(2) per line
	// cost a fifth of a cached read's CPU. Deferred first, so it flushes last.
	logOut := logbuf.New(stdout, 100*time.Millisecond)
	defer logOut.Close()
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal the default action returns, so a second
		// one ends a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	if err := serve(ctx, cfg, *demoFlag, log); err != nil {
		log.Error("theaterd stopped", "error", err.Error())
		return exitFail
	}
	return exitOK
}

// serve wires everything, serves until ctx ends, then shuts down in order:
// HTTP (draining), the API's background work, Redis, the database.
func serve(ctx context.Context, cfg config.Config, withDemo bool, log *slog.Logger) error {
	log.Info("theaterd starting", "config", cfg) // Config redacts itself
	rcfg := cfg.Redis
	rcfg.Logger = log
	// New never fails because Redis is down: it reconnects in the background.
	rdb, err := redisx.New(ctx, rcfg)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer rdb.Close()

	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := sqlstore.Open(openCtx, cfg.DatabaseURL)
	cancel()
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer st.Close()

	demoCreated := false
	if withDemo {
		res, err := demo.Load(ctx, st, 0)
		if err != nil {
			return fmt.Errorf("demo catalogue: %w", err)
		}
		demoCreated = res.Created
		log.Info("demo catalogue", "created", res.Created, "scripts", res.Scripts, "users", len(res.Users),
			"password", demo.Password)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	api, err := httpapi.New(httpapi.Deps{
		Redis: rdb, Users: st, Scripts: st, Licenses: st, Database: st,
		Logger: log, Metrics: reg,
		Sessions: session.Config{
			IdleTimeout:     cfg.SessionIdleTimeout,
			AbsoluteTimeout: cfg.SessionAbsoluteTimeout,
			TouchInterval:   cfg.SessionTouchInterval,
		},
		APIRate:        cfg.RateLimitAPI,
		LoginRate:      cfg.RateLimitLogin,
		TrustedProxies: cfg.TrustedProxies,
	})
	if err != nil {
		return err
	}

	if demoCreated {
		// Lists cached by an earlier run on this Redis do not show the
		// catalogue just inserted behind the API's back.
		if err := api.InvalidateCatalogue(ctx); err != nil {
			log.Warn("could not purge cached lists after loading the demo", "error", err.Error())
		}
	}

	srv := &http.Server{
		Addr:    cfg.HTTPAddr,
		Handler: api,
		// Bounds against slow clients (slow-loris) and stuck connections.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		_ = api.Close(context.Background())
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	log.Info("theaterd listening", "addr", ln.Addr().String(), "database", st.Dialect())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	case serveErr = <-served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still running at the shutdown deadline", "error", err.Error())
		_ = srv.Close()
	}
	if err := api.Close(sctx); err != nil {
		log.Warn("view counts not flushed", "error", err.Error())
	}
	// The deferred Close calls run next: the database, then Redis.
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}
