// Command theaterd serves the Theater Script Pro API (API.md): it reads its
// configuration from the environment (and ./.env when present; the real
// environment wins), connects to Redis and the database, serves HTTP and,
// on SIGINT or SIGTERM, answers 503 on /readyz for SHUTDOWN_DELAY, then
// drains in-flight requests before closing Redis and the database.
//
//	theaterd          # serve
//	theaterd -demo    # load the demo catalogue, then serve
//	theaterd -demo -demo-scripts 1000000   # a million-script catalogue
//	theaterd -version # print the version and exit
//	theaterd -h       # flags and every variable with its default
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
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/joho/godotenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/theaterscriptpro/tsp/internal/config"
	"github.com/theaterscriptpro/tsp/internal/demo"
	"github.com/theaterscriptpro/tsp/internal/httpapi"
	"github.com/theaterscriptpro/tsp/internal/logbuf"
	"github.com/theaterscriptpro/tsp/internal/sqlstore"
	"github.com/theaterscriptpro/tsp/internal/tracing"
	"github.com/theaterscriptpro/tsp/redisx"
	"github.com/theaterscriptpro/tsp/session"
)

func main() {
	getenv, err := withDotenv(".env", os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "theaterd:", err)
		os.Exit(exitConfig)
	}
	os.Exit(run(os.Args[1:], getenv, os.Stdout, os.Stderr))
}

// withDotenv returns a getenv that answers from the real environment
// (lookup) first and, for a variable not set there, from the file at path
// when it exists (the original guide's "copy .env.example to .env"). A
// variable set to the empty string in the environment stays empty: the
// environment wins even then.
func withDotenv(path string, lookup func(string) (string, bool)) (func(string) string, error) {
	file, err := godotenv.Read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		file = nil
	case err != nil:
		// godotenv's messages quote the file, which may hold passwords.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: %v", path, pe.Err)
		}
		return nil, fmt.Errorf("%s: not a valid env file (want NAME=value lines, # comments)", path)
	}
	for k := range file {
		if !validName(k) {
			return nil, fmt.Errorf("%s: %q is not a variable name (want letters, digits and _)", path, k)
		}
	}
	return func(k string) string {
		if v, ok := lookup(k); ok {
			return v
		}
		return file[k]
	}, nil
}

// validName reports whether k is a shell variable name: [A-Za-z_][A-Za-z0-9_]*.
func validName(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return k != ""
}

// version is the release, set at build time with
// -ldflags "-X main.version=v1.2.3" (the Dockerfile does). Empty: the
// module version Go recorded, "(devel)" for a plain build.
var version = ""

// build is what this binary is: its version, and the commit and its time
// when Go recorded them (revision ends in "+dirty" for a modified tree).
type build struct{ version, revision, time string }

func thisBuild() build {
	b := build{version: version}
	dirty := false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.version == "" {
			b.version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.revision = s.Value
			case "vcs.time":
				b.time = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if b.version == "" {
		b.version = "(devel)"
	}
	if b.revision != "" && dirty {
		b.revision += "+dirty"
	}
	return b
}

// versionString is what -version prints: the version, the commit and its
// time when Go recorded them, and the Go release.
func versionString() string {
	b := thisBuild()
	out := "theaterd " + b.version
	if b.revision != "" {
		out += " commit " + b.revision
		if b.time != "" {
			out += " " + b.time
		}
	}
	return out + " " + runtime.Version()
}

// buildInfo is the metric tsp_build_info{version,revision,goversion} 1, so
// a dashboard can tell which build each instance runs.
func buildInfo() prometheus.Collector {
	b := thisBuild()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "build_info",
		Help: "The running build: version, commit (revision) and Go release; always 1.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(b.version, b.revision, runtime.Version()).Set(1)
	return g
}

// usage writes -h: the flags, then every variable of config.Vars with its
// default.
func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: theaterd [flags]\n\n"+
		"Serves the Theater Script Pro API. Configuration comes from environment\n"+
		"variables, and from ./.env when that file exists (a variable set in the\n"+
		"environment wins). Unset or empty: the default.\n\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nEnvironment variables:\n")
	for _, v := range config.Vars {
		def := v.Default
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(w, "  %s (default: %s)\n      %s\n", v.Name, def, strings.ReplaceAll(v.Meaning, "`", ""))
	}
}

// Exit statuses.
const (
	exitOK     = 0
	exitFail   = 1 // could not start or serve
	exitConfig = 2 // bad flags or configuration
)

// accessMessage is the message of httpapi's per-request log line.
const accessMessage = "request"

// warnInterval is how often one cause of warning is logged at most.
const warnInterval = 10 * time.Second

// run is main with its surroundings passed in, so tests can call it.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("theaterd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // -h is answered below, on stdout
	demoFlag := fs.Bool("demo", false, "load the demo catalogue into the database, then serve")
	demoScripts := fs.Int("demo-scripts", 0, fmt.Sprintf("with -demo: how many scripts the demo catalogue has (default %d, at most %d), inserted %d per transaction with progress on stderr",
		demo.DefaultScripts, demo.MaxScripts, demo.BatchSize))
	versionFlag := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs)
			return exitOK
		}
		fmt.Fprintln(stderr, "theaterd: run theaterd -h for the flags and variables")
		return exitConfig
	}
	if *versionFlag {
		fmt.Fprintln(stdout, versionString())
		return exitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "theaterd: unexpected argument %q\n", fs.Arg(0))
		return exitConfig
	}
	var demoOpt *demo.Options // nil: no demo catalogue
	switch {
	case *demoScripts < 0 || *demoScripts > demo.MaxScripts:
		fmt.Fprintf(stderr, "theaterd: -demo-scripts %d: must be 1 to %d\n", *demoScripts, demo.MaxScripts)
		return exitConfig
	case *demoScripts > 0 && !*demoFlag:
		fmt.Fprintln(stderr, "theaterd: -demo-scripts needs -demo")
		return exitConfig
	case *demoFlag:
		demoOpt = &demo.Options{Scripts: *demoScripts, Progress: stderr}
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
	// WARN and above are written through at once (the access lines, message
	// "request", stay batched), so a kill cannot lose the line explaining
	// it; the same warning repeated per request in an outage is written once
	// per 10 s with a count.
	logOut := logbuf.New(stdout, 100*time.Millisecond)
	defer logOut.Close()
	jsonLog := slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: cfg.LogLevel})
	throttle := logbuf.Throttle(logbuf.WriteThrough(jsonLog, logOut, accessMessage), warnInterval, accessMessage)
	defer throttle.Close() // before logOut.Close: the last counts get written
	log := slog.New(throttle)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal the default action returns, so a second
		// one ends a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	if err := serve(ctx, cfg, demoOpt, log); err != nil {
		log.Error("theaterd stopped", "error", err.Error())
		return exitFail
	}
	return exitOK
}

// serve wires everything, serves until ctx ends, then shuts down in order:
// HTTP (draining), the API's background work, Redis, the database.
func serve(ctx context.Context, cfg config.Config, demoOpt *demo.Options, log *slog.Logger) error {
	log.Info("theaterd starting", "config", cfg) // Config redacts itself
	rcfg := cfg.Redis
	rcfg.Logger = log
	var tp trace.TracerProvider // nil: tracing off
	if cfg.OTLPEndpoint != "" {
		p, err := tracing.Start(ctx, tracing.Options{RequestID: httpapi.RequestID})
		if err != nil {
			return err
		}
		defer func() {
			// Spans still batched are sent, within a bound.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := p.Shutdown(sctx); err != nil {
				log.Warn("tracing shutdown", "error", err.Error())
			}
		}()
		tp = p
		rcfg.CommandObserver = tracing.RedisObserver(p)
	}
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
	if demoOpt != nil {
		res, err := demo.LoadWith(ctx, st, *demoOpt)
		if err != nil {
			return fmt.Errorf("demo catalogue: %w", err)
		}
		demoCreated = res.Created
		log.Info("demo catalogue", "created", res.Created, "scripts", res.Scripts, "users", len(res.Users),
			"password", demo.Password)
	}

	// httpapi names everything it registers tsp_…; the runtime's and the
	// process's figures keep their standard go_* and process_* names, which
	// the usual Go dashboards and alerts select on (each scrape carries its
	// job and instance labels, so they never mix with another service's).
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		st.Collector()) // go_sql_*: standard names, like go_* and process_*
	prometheus.WrapRegistererWithPrefix(httpapi.MetricPrefix, reg).MustRegister(buildInfo())
	api, err := httpapi.New(httpapi.Deps{
		Redis: rdb, Users: st, Scripts: st, Licenses: st, Database: st,
		Logger: log, Metrics: reg, PrivateMetrics: cfg.MetricsAddr != "",
		Sessions: session.Config{
			IdleTimeout:     cfg.SessionIdleTimeout,
			AbsoluteTimeout: cfg.SessionAbsoluteTimeout,
			TouchInterval:   cfg.SessionTouchInterval,
		},
		APIRate:        cfg.RateLimitAPI,
		LoginRate:      cfg.RateLimitLogin,
		TrustedProxies: cfg.TrustedProxies,
		CacheWarm:      cfg.CacheWarm,
		TracerProvider: tp,
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
	log.Info("theaterd listening", "addr", ln.Addr().String(), "database", st.Dialect(), "version", versionString())
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()

	var msrv *http.Server
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			_ = srv.Close()
			_ = api.Close(context.Background())
			return fmt.Errorf("listen on METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", api.MetricsHandler())
		// The runtime's profiles, for the private listener only: a CPU
		// profile under load is how a slow path is found, in production
		// too, and the public port must never expose them.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10,
			ErrorLog: srv.ErrorLog}
		log.Info("metrics listening", "addr", mln.Addr().String())
		go func() { served <- msrv.Serve(mln) }()
	}

	var serveErr error
	select {
	case <-ctx.Done():
		// /readyz says 503 at once while everything else still serves, so
		// load balancers take this instance out before it stops accepting.
		api.Drain()
		srv.SetKeepAlivesEnabled(false) // clients reconnect, through the balancer
		log.Info("shutting down", "delay", config.Duration(cfg.ShutdownDelay), "timeout", config.Duration(cfg.ShutdownTimeout))
		select {
		case <-time.After(cfg.ShutdownDelay):
		case serveErr = <-served:
		}
	case serveErr = <-served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still running at the shutdown deadline", "error", err.Error())
		_ = srv.Close()
	}
	if msrv != nil {
		// Last, so the drain can be watched on /metrics.
		_ = msrv.Shutdown(sctx)
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
