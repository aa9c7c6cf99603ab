// Package config reads the server's configuration from the environment:
// every variable API.md lists, plus the Redis, session and process
// settings, checked all at once so a bad start-up names every bad variable
// in one go (one line each) and never shows a password.
//
//	cfg, err := config.Load(os.Getenv)
//	if err != nil {
//		fmt.Fprintln(os.Stderr, err) // one line per bad variable
//		os.Exit(2)
//	}
//	logger.Info("config", "config", cfg) // redacted: Config is a slog.LogValuer
//
// An unset or empty variable takes its default. Values are trimmed of
// surrounding spaces and tabs, except REDIS_PASSWORD, which is used as it
// is; a value that is only white space, or that holds a control byte, is
// an error. Durations are Go durations with a unit (500ms, 10s, 1m, 24h).
//
// Vars lists every variable with its default and meaning: `theaterd -h`
// prints it, and the tests hold Load, README.md and .env.example to it.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/theaterscriptpro/tsp/clientip"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/redisx"
)

// Config is the server's configuration, typed and checked.
type Config struct {
	// HTTPAddr is the listen address (HTTP_ADDR).
	HTTPAddr string

	// Redis is ready for redisx.New: address(es), mode, credentials, DB,
	// TLS, key prefix and timeouts (the REDIS_* variables).
	Redis redisx.Config

	// DatabaseURL is DATABASE_URL as sqlstore.Open takes it. It may hold a
	// password: log Config (redacted), never this field.
	DatabaseURL string

	// RateLimitAPI and RateLimitLogin are RATE_LIMIT_API and
	// RATE_LIMIT_LOGIN; the zero Rate means "off".
	RateLimitAPI   ratelimit.Rate
	RateLimitLogin ratelimit.Rate

	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// (TRUSTED_PROXIES), as clientip.Parse reads them: a bare IP is a /32
	// or /128, IPv4-mapped CIDRs are folded to IPv4. Empty: none.
	TrustedProxies []netip.Prefix

	// SessionIdleTimeout, SessionAbsoluteTimeout and SessionTouchInterval
	// are SESSION_IDLE_TIMEOUT, SESSION_ABSOLUTE_TIMEOUT and
	// SESSION_TOUCH_INTERVAL; an unset SESSION_TOUCH_INTERVAL is
	// TouchIntervalFor(SessionIdleTimeout).
	SessionIdleTimeout     time.Duration
	SessionAbsoluteTimeout time.Duration
	SessionTouchInterval   time.Duration

	// LogLevel is LOG_LEVEL.
	LogLevel slog.Level

	// ShutdownTimeout is SHUTDOWN_TIMEOUT.
	ShutdownTimeout time.Duration

	// CacheWarm is CACHE_WARM: how many entries cache warming refills; 0
	// means off.
	CacheWarm int
	// OTLPEndpoint is OTEL_EXPORTER_OTLP_ENDPOINT: tracing is on when it is
	// set. The OpenTelemetry SDK reads it (and the other OTEL_* variables)
	// itself; it is checked here so that a typo stops start-up.
	OTLPEndpoint string

	// ShutdownDelay is SHUTDOWN_DELAY: how long /readyz answers 503 after
	// SIGTERM before the listener closes, so load balancers stop sending.
	ShutdownDelay time.Duration

	// MetricsAddr is METRICS_ADDR: when set, /metrics is served on this
	// address only, not on HTTPAddr. Empty: on HTTPAddr.
	MetricsAddr string
}

// Defaults of the variables, as the package doc's table lists them.
const (
	DefaultHTTPAddr               = ":8080"
	DefaultRedisHost              = "localhost"
	DefaultRedisPort              = 6379
	DefaultRedisKeyPrefix         = "tsp:"
	DefaultRedisDialTimeout       = 2 * time.Second
	DefaultRedisCommandTimeout    = time.Second
	DefaultDatabaseURL            = "sqlite:./data/theater.db"
	DefaultRateLimitAPI           = "600/1m"
	DefaultRateLimitLogin         = "5/1m"
	DefaultSessionIdleTimeout     = 24 * time.Hour
	DefaultSessionAbsoluteTimeout = 7 * 24 * time.Hour
	// DefaultSessionTouchInterval is the longest touch interval
	// TouchIntervalFor derives.
	DefaultSessionTouchInterval = time.Minute
	DefaultShutdownTimeout      = 15 * time.Second
	DefaultShutdownDelay        = 5 * time.Second
	DefaultCacheWarm            = 50
)

// MaxCacheWarm bounds CACHE_WARM: warming is a head start for the hottest
// entries, not a copy of the catalogue.
const MaxCacheWarm = 1000

// TouchIntervalFor is the SESSION_TOUCH_INTERVAL an unset variable takes:
// min(1m, idle/4), so that a session used steadily has its last-seen time
// written at least four times per idle timeout, whatever that is.
func TouchIntervalFor(idle time.Duration) time.Duration {
	return min(DefaultSessionTouchInterval, idle/4)
}

// Var is one environment variable the server reads.
type Var struct {
	Name    string
	Default string // as it would be written in the environment; "" for none
	Meaning string
}

// Vars is every variable Load reads, in the order `theaterd -h` shows them.
// The defaults are the Default constants, formatted as one would write them.
var Vars = []Var{
	{"HTTP_ADDR", DefaultHTTPAddr, "listen address, `[host]:port` (port 0 picks a free one)"},
	{"METRICS_ADDR", "", "serve `/metrics` on this private `[host]:port` only, not on HTTP_ADDR; unset: on HTTP_ADDR"},
	{"REDIS_URL", "", "`redis://[[user]:pass@]host[:port][/db]`, `rediss://` for TLS; when set, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD and REDIS_DB are ignored. Percent-encode `@ / ? # :` in the password"},
	{"REDIS_HOST", DefaultRedisHost, "Redis host name or IP"},
	{"REDIS_PORT", strconv.Itoa(DefaultRedisPort), "Redis port, 1–65535"},
	{"REDIS_PASSWORD", "", "Redis password (AUTH); never logged nor shown in an error"},
	{"REDIS_DB", "0", "database number, 0–65536 (Cluster: only 0)"},
	{"REDIS_CLUSTER_ADDRS", "", "comma-separated `host:port` seed nodes: use Redis Cluster (credentials and TLS still come from REDIS_URL or REDIS_PASSWORD)"},
	{"REDIS_SENTINEL_ADDRS", "", "comma-separated `host:port` sentinels: use Redis Sentinel; needs REDIS_SENTINEL_MASTER; not with REDIS_CLUSTER_ADDRS"},
	{"REDIS_SENTINEL_MASTER", "", "the master set name the sentinels watch; needs REDIS_SENTINEL_ADDRS"},
	{"REDIS_KEY_PREFIX", DefaultRedisKeyPrefix, "prefix of every Redis key, at most 64 bytes of `A-Za-z0-9-_.:/@+=&,!~#$();<>\\|^`'\"`"},
	{"REDIS_DIAL_TIMEOUT", Duration(DefaultRedisDialTimeout), "bound on connecting to Redis, 1ms–1m"},
	{"REDIS_COMMAND_TIMEOUT", Duration(DefaultRedisCommandTimeout), "deadline of each Redis call, 1ms–1m"},
	{"DATABASE_URL", DefaultDatabaseURL, "`sqlite:PATH` (embedded) or `postgres://…` / `postgresql://…`"},
	{"RATE_LIMIT_API", DefaultRateLimitAPI, "limit of every `/api` request per user or client IP: `N/DURATION` or `off`"},
	{"RATE_LIMIT_LOGIN", DefaultRateLimitLogin, "limit of `POST /api/auth/login` per client IP + email: `N/DURATION` or `off`"},
	{"TRUSTED_PROXIES", "", "comma-separated CIDRs or bare IPs whose `X-Forwarded-For` is believed; IPv4-mapped CIDRs (`::ffff:10.0.0.0/104`) count as IPv4 (`10.0.0.0/8`)"},
	{"SESSION_IDLE_TIMEOUT", Duration(DefaultSessionIdleTimeout), "a session ends after this long unused, 1s–8760h"},
	{"SESSION_ABSOLUTE_TIMEOUT", Duration(DefaultSessionAbsoluteTimeout), "a session ends this long after sign-in, whatever its use; at least SESSION_IDLE_TIMEOUT, at most 8760h"},
	{"SESSION_TOUCH_INTERVAL", Duration(DefaultSessionTouchInterval), "a session's last-seen time is written at most this often; 0 to less than SESSION_IDLE_TIMEOUT. Unset, it is min(1m, SESSION_IDLE_TIMEOUT ÷ 4); only a value set explicitly can be an error"},
	{"LOG_LEVEL", "info", "`debug`, `info`, `warn` or `error`"},
	{"SHUTDOWN_DELAY", Duration(DefaultShutdownDelay), "after SIGINT/SIGTERM, how long `/readyz` answers 503 while requests are still served, so load balancers stop sending; 0–10m"},
	{"SHUTDOWN_TIMEOUT", Duration(DefaultShutdownTimeout), "how long in-flight requests may finish after the delay, 1ms–1h"},
	{"CACHE_WARM", strconv.Itoa(DefaultCacheWarm), "`off`, or how many response-cache entries warming refills at start and after a catalogue purge (1–1000): the first 3 catalogue pages, then the most-viewed scripts; `off` also stops the writer's refresh of a script it updated"},
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "", "`http(s)://host:port` of an OTLP/HTTP collector: turns tracing on; the other `OTEL_*` variables keep their OpenTelemetry meaning"},
	{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "the OTLP protocol; only `http/protobuf`"},
}

// Duration formats d as one would write it: 24h, 1m, 1h30m, 2s, 500ms
// (time.Duration's String gives 24h0m0s and 1m0s).
func Duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Rate formats r as one would write it: 600/1m, or off.
func Rate(r ratelimit.Rate) string {
	if r.Off() {
		return "off"
	}
	return strconv.Itoa(r.Limit) + "/" + Duration(r.Window)
}

// VarError is what is wrong with one environment variable. Problem says
// what is wrong and what is wanted; it never repeats the value, which
// could be (or hold) a password.
type VarError struct {
	Name    string
	Problem string
}

// Error returns "NAME: problem", one line.
func (e *VarError) Error() string { return e.Name + ": " + e.Problem }

// Load reads the configuration through getenv (os.Getenv in main, a map in
// tests). On bad values it returns every problem at once: an errors.Join of
// *VarError, one per bad variable, so err.Error() has one line per bad
// variable, each naming it and saying what is wrong, never showing a
// password. Use errors.As to get at a *VarError.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv, seen: map[string]bool{}}
	cfg := Config{
		HTTPAddr:               DefaultHTTPAddr,
		DatabaseURL:            DefaultDatabaseURL,
		SessionIdleTimeout:     DefaultSessionIdleTimeout,
		SessionAbsoluteTimeout: DefaultSessionAbsoluteTimeout,
		LogLevel:               slog.LevelInfo,
		ShutdownTimeout:        DefaultShutdownTimeout,
		CacheWarm:              DefaultCacheWarm,
		ShutdownDelay:          DefaultShutdownDelay,
	}

	if v, ok := l.get("HTTP_ADDR"); ok {
		if p := checkListenAddr(v); p != "" {
			l.bad("HTTP_ADDR", p)
		} else {
			cfg.HTTPAddr = v
		}
	}

	if v, ok := l.get("METRICS_ADDR"); ok {
		switch p := checkListenAddr(v); {
		case p != "":
			l.bad("METRICS_ADDR", p)
		case v == cfg.HTTPAddr:
			l.bad("METRICS_ADDR", "must differ from HTTP_ADDR; unset it to serve /metrics on HTTP_ADDR")
		default:
			cfg.MetricsAddr = v
		}
	}

	cfg.Redis = l.redis()

	if v, ok := l.get("DATABASE_URL"); ok {
		if p := checkDatabaseURL(v); p != "" {
			l.bad("DATABASE_URL", p)
		} else {
			cfg.DatabaseURL = v
		}
	}

	cfg.RateLimitAPI = l.rate("RATE_LIMIT_API", DefaultRateLimitAPI)
	cfg.RateLimitLogin = l.rate("RATE_LIMIT_LOGIN", DefaultRateLimitLogin)

	if v, ok := l.get("TRUSTED_PROXIES"); ok {
		ps, err := clientip.Parse(v)
		if err != nil {
			l.bad("TRUSTED_PROXIES", strings.TrimPrefix(err.Error(), clientip.ErrInvalid.Error()+": "))
		}
		cfg.TrustedProxies = ps
	}

	const year = 365 * 24 * time.Hour
	l.duration("SESSION_IDLE_TIMEOUT", &cfg.SessionIdleTimeout, time.Second, year)
	l.duration("SESSION_ABSOLUTE_TIMEOUT", &cfg.SessionAbsoluteTimeout, time.Second, year)
	if cfg.SessionAbsoluteTimeout < cfg.SessionIdleTimeout && !l.seen["SESSION_IDLE_TIMEOUT"] && !l.seen["SESSION_ABSOLUTE_TIMEOUT"] {
		l.bad("SESSION_ABSOLUTE_TIMEOUT", "must be at least SESSION_IDLE_TIMEOUT ("+cfg.SessionIdleTimeout.String()+")")
	}
	// Unset, the touch interval follows the idle timeout; only a value the
	// operator wrote can be wrong.
	cfg.SessionTouchInterval = -1
	l.duration("SESSION_TOUCH_INTERVAL", &cfg.SessionTouchInterval, 0, year)
	switch {
	case cfg.SessionTouchInterval < 0:
		cfg.SessionTouchInterval = TouchIntervalFor(cfg.SessionIdleTimeout)
	case cfg.SessionTouchInterval >= cfg.SessionIdleTimeout && !l.seen["SESSION_IDLE_TIMEOUT"]:
		l.bad("SESSION_TOUCH_INTERVAL", "must be less than SESSION_IDLE_TIMEOUT ("+cfg.SessionIdleTimeout.String()+")")
	}

	if v, ok := l.get("LOG_LEVEL"); ok {
		switch strings.ToLower(v) {
		case "debug":
			cfg.LogLevel = slog.LevelDebug
		case "info":
			cfg.LogLevel = slog.LevelInfo
		case "warn", "warning":
			cfg.LogLevel = slog.LevelWarn
		case "error":
			cfg.LogLevel = slog.LevelError
		default:
			l.bad("LOG_LEVEL", "must be debug, info, warn or error")
		}
	}

	l.duration("SHUTDOWN_DELAY", &cfg.ShutdownDelay, 0, 10*time.Minute)
	l.duration("SHUTDOWN_TIMEOUT", &cfg.ShutdownTimeout, time.Millisecond, time.Hour)

	// CACHE_WARM: off, or a count of entries.
	if v, ok := l.get("CACHE_WARM"); ok {
		n, err := strconv.Atoi(v)
		switch {
		case strings.EqualFold(v, "off"):
			cfg.CacheWarm = 0
		case err != nil || n < 1 || n > MaxCacheWarm:
			l.bad("CACHE_WARM", "must be off or a whole number from 1 to "+strconv.Itoa(MaxCacheWarm))
		default:
			cfg.CacheWarm = n
		}
	}
	if v, ok := l.get("OTEL_EXPORTER_OTLP_ENDPOINT"); ok {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.bad("OTEL_EXPORTER_OTLP_ENDPOINT", "must be an http:// or https:// URL of an OTLP/HTTP collector, such as http://localhost:4318")
		} else {
			cfg.OTLPEndpoint = v
		}
	}
	if v, ok := l.get("OTEL_EXPORTER_OTLP_PROTOCOL"); ok && v != "http/protobuf" {
		l.bad("OTEL_EXPORTER_OTLP_PROTOCOL", "must be http/protobuf, the only OTLP protocol theaterd speaks")
	}

	if len(l.errs) > 0 {
		return Config{}, errors.Join(l.errs...)
	}
	return cfg, nil
}

// loader collects one problem per variable.
type loader struct {
	getenv func(string) string
	errs   []error
	seen   map[string]bool // variables with a problem reported
}

// bad records problem for name unless name already has one.
func (l *loader) bad(name, problem string) {
	if l.seen[name] {
		return
	}
	l.seen[name] = true
	l.errs = append(l.errs, &VarError{Name: name, Problem: problem})
}

// get returns name's value trimmed, and whether it is set and usable. A
// value that is only white space or holds a control byte is reported.
func (l *loader) get(name string) (string, bool) {
	raw := l.getenv(name)
	if raw == "" {
		return "", false
	}
	v := strings.Trim(raw, " \t")
	switch {
	case v == "":
		l.bad(name, "is only white space; unset it for the default")
		return "", false
	case hasControl(v):
		l.bad(name, "contains a control character")
		return "", false
	}
	return v, true
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// duration reads a Go duration within [lo, hi] into *dst when set.
func (l *loader) duration(name string, dst *time.Duration, lo, hi time.Duration) {
	v, ok := l.get(name)
	if !ok {
		return
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil && isNumber(v):
		l.bad(name, "needs a unit, as in 10s, 500ms or 24h")
	case err != nil:
		l.bad(name, "must be a Go duration such as 500ms, 10s, 1m or 24h")
	case d < 0:
		l.bad(name, "must not be negative")
	case d < lo || d > hi:
		l.bad(name, "must be between "+fmtDuration(lo)+" and "+fmtDuration(hi))
	default:
		*dst = d
	}
}

func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return Duration(d)
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// rate reads a ratelimit.Rate, reporting ParseRate's reason without the
// value it quotes.
func (l *loader) rate(name, def string) ratelimit.Rate {
	v, ok := l.get(name)
	if !ok {
		if l.seen[name] {
			return ratelimit.Rate{}
		}
		v = def
	}
	r, err := ratelimit.ParseRate(v)
	if err != nil {
		reason, found := strings.CutPrefix(err.Error(), strconv.Quote(strings.TrimSpace(v))+": ")
		if !found {
			reason = "want N/DURATION such as 600/1m, or off"
		}
		l.bad(name, reason)
		return ratelimit.Rate{}
	}
	return r
}

// redis builds the redisx.Config from REDIS_URL or REDIS_HOST/PORT/
// PASSWORD/DB, then the cluster or sentinel addresses, prefix and
// timeouts.
func (l *loader) redis() redisx.Config {
	var rc redisx.Config
	if raw := l.getenv("REDIS_URL"); raw != "" {
		// No trimming or control-byte report through get: the URL holds the
		// password, and ParseURL's errors never echo any of it.
		u, err := redisx.ParseURL(strings.Trim(raw, " \t"))
		if err != nil {
			l.bad("REDIS_URL", urlProblem(err))
		}
		rc = u
	} else {
		host := DefaultRedisHost
		if v, ok := l.get("REDIS_HOST"); ok {
			if !validHost(v) {
				l.bad("REDIS_HOST", "must be a host name or IP address")
			} else {
				host = v
			}
		}
		port := DefaultRedisPort
		if v, ok := l.get("REDIS_PORT"); ok {
			n, ok := atoiDigits(v)
			if !ok || n < 1 || n > 65535 {
				l.bad("REDIS_PORT", "must be a port number from 1 to 65535")
			} else {
				port = n
			}
		}
		rc.Addrs = []string{net.JoinHostPort(host, strconv.Itoa(port))}
		// The password is taken as it is: spaces may be part of it.
		rc.Password = l.getenv("REDIS_PASSWORD")
		if v, ok := l.get("REDIS_DB"); ok {
			n, ok := atoiDigits(v)
			if !ok || n > 1<<16 {
				l.bad("REDIS_DB", "must be a database number from 0 to 65536")
			} else {
				rc.DB = n
			}
		}
	}

	cluster, hasCluster := l.get("REDIS_CLUSTER_ADDRS")
	sentinels, hasSentinels := l.get("REDIS_SENTINEL_ADDRS")
	master, hasMaster := l.get("REDIS_SENTINEL_MASTER")
	switch {
	case hasCluster && (hasSentinels || hasMaster):
		l.bad("REDIS_CLUSTER_ADDRS", "cannot be used with REDIS_SENTINEL_ADDRS or REDIS_SENTINEL_MASTER: choose Cluster or Sentinel")
	case hasCluster:
		if addrs, p := parseAddrs(cluster); p != "" {
			l.bad("REDIS_CLUSTER_ADDRS", p)
		} else {
			rc.Addrs, rc.Cluster = addrs, true
			if rc.DB != 0 {
				name := "REDIS_DB"
				if l.getenv("REDIS_URL") != "" {
					name = "REDIS_URL"
				}
				l.bad(name, "Redis Cluster has only database 0")
			}
		}
	case hasSentinels && !hasMaster:
		l.bad("REDIS_SENTINEL_MASTER", "is required with REDIS_SENTINEL_ADDRS")
	case hasMaster && !hasSentinels:
		if !l.seen["REDIS_SENTINEL_ADDRS"] {
			l.bad("REDIS_SENTINEL_ADDRS", "is required with REDIS_SENTINEL_MASTER")
		}
	case hasSentinels:
		addrs, p := parseAddrs(sentinels)
		if p != "" {
			l.bad("REDIS_SENTINEL_ADDRS", p)
		}
		if strings.ContainsAny(master, " \t") {
			l.bad("REDIS_SENTINEL_MASTER", "must not contain white space")
		}
		rc.Addrs, rc.SentinelMaster = addrs, master
	}

	rc.KeyPrefix = DefaultRedisKeyPrefix
	if v, ok := l.get("REDIS_KEY_PREFIX"); ok {
		if _, err := redisx.NewKeys(v); err != nil {
			l.bad("REDIS_KEY_PREFIX", err.Error())
		} else {
			rc.KeyPrefix = v
		}
	}
	rc.DialTimeout, rc.CommandTimeout = DefaultRedisDialTimeout, DefaultRedisCommandTimeout
	l.duration("REDIS_DIAL_TIMEOUT", &rc.DialTimeout, time.Millisecond, time.Minute)
	l.duration("REDIS_COMMAND_TIMEOUT", &rc.CommandTimeout, time.Millisecond, time.Minute)

	if len(l.errs) == 0 {
		// A last check by redisx itself; the checks above should leave it
		// nothing to find. Its messages never hold the password.
		if err := rc.Validate(); err != nil {
			name := "REDIS_HOST"
			if l.getenv("REDIS_URL") != "" {
				name = "REDIS_URL"
			}
			l.bad(name, strings.TrimPrefix(err.Error(), redisx.ErrInvalidConfig.Error()+": "))
		}
	}
	return rc
}

// urlProblem is ParseURL's reason without the package's prefixes.
func urlProblem(err error) string {
	s := strings.TrimPrefix(err.Error(), redisx.ErrInvalidConfig.Error()+": ")
	return strings.TrimPrefix(s, "URL: ")
}

// atoiDigits reads a decimal number of ASCII digits only (no sign, no
// spaces) that fits in an int.
func atoiDigits(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// validHost accepts host names and IP addresses (IPv6 without brackets,
// with an optional %zone).
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':' || c == '%') {
			return false
		}
	}
	if strings.ContainsAny(h, ":%") {
		_, err := netip.ParseAddr(h)
		return err == nil
	}
	return true
}

// parseAddrs reads comma-separated host:port addresses.
func parseAddrs(v string) ([]string, string) {
	parts := strings.Split(v, ",")
	addrs := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		host, port, err := net.SplitHostPort(p)
		n, okPort := atoiDigits(port)
		switch {
		case p == "":
			return nil, fmt.Sprintf("address %d of %d is empty; want host:port,host:port", i+1, len(parts))
		case err != nil:
			return nil, fmt.Sprintf("address %d of %d is not host:port", i+1, len(parts))
		case !validHost(host):
			return nil, fmt.Sprintf("address %d of %d has a bad host", i+1, len(parts))
		case !okPort || n < 1 || n > 65535:
			return nil, fmt.Sprintf("address %d of %d needs a port from 1 to 65535", i+1, len(parts))
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	return addrs, ""
}

// checkListenAddr checks an HTTP listen address, [host]:port.
func checkListenAddr(v string) string {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "must be [host]:port, such as :8080 or 127.0.0.1:8080"
	}
	if host != "" && !validHost(host) {
		return "has a bad host; want a host name or IP address, or none for every interface"
	}
	if n, ok := atoiDigits(port); !ok || n > 65535 {
		return "needs a port from 0 to 65535"
	}
	return ""
}

// checkDatabaseURL accepts sqlite:PATH and postgres:// or postgresql://
// URLs; its messages never repeat the URL, which may hold a password.
func checkDatabaseURL(v string) string {
	switch {
	case strings.HasPrefix(v, "sqlite:"):
		if path, _, _ := strings.Cut(strings.TrimPrefix(v, "sqlite:"), "?"); path == "" {
			return "sqlite: needs a file path, as in sqlite:./data/theater.db"
		}
		return ""
	case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return "is not a valid postgres:// URL (percent-encode '@', '/', '?', '#' and ':' in the password)"
		}
		return ""
	}
	return "must be sqlite:PATH or a postgres:// (postgresql://) URL"
}

// Redacted returns a copy of c that is safe to log: the Redis password and
// any password in DATABASE_URL are replaced.
func (c Config) Redacted() Config {
	if c.Redis.Password != "" {
		c.Redis.Password = redacted
	}
	c.DatabaseURL = redactURL(c.DatabaseURL)
	c.TrustedProxies = append([]netip.Prefix(nil), c.TrustedProxies...)
	return c
}

const redacted = "REDACTED"

// redactURL hides the password and the query (which may carry one) of a
// postgres URL; sqlite paths are shown as they are.
func redactURL(s string) string {
	if strings.HasPrefix(s, "sqlite:") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(hidden: not a valid URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = redacted
	}
	u.Fragment = ""
	return u.Redacted()
}

// String shows the configuration as NAME=value lines for a start-up log,
// with every password redacted.
func (c Config) String() string {
	var b strings.Builder
	for _, a := range c.attrs() {
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(a.Value.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// GoString makes %#v redacted too.
func (c Config) GoString() string {
	return "config.Config{" + strings.ReplaceAll(strings.TrimSpace(c.String()), "\n", " ") + "}"
}

// LogValue makes Config log itself redacted through log/slog.
func (c Config) LogValue() slog.Value { return slog.GroupValue(c.attrs()...) }

func (c Config) attrs() []slog.Attr {
	r := c.Redacted()
	mode := "standalone"
	switch {
	case r.Redis.Cluster:
		mode = "cluster"
	case r.Redis.SentinelMaster != "":
		mode = "sentinel:" + r.Redis.SentinelMaster
	}
	proxies := make([]string, len(r.TrustedProxies))
	for i, p := range r.TrustedProxies {
		proxies[i] = p.String()
	}
	pass := "none"
	if r.Redis.Password != "" {
		pass = redacted
	}
	// Durations and rates as one writes them ("24h", "600/1m"): slog's
	// JSON handler would print a time.Duration as nanoseconds.
	metrics := r.MetricsAddr
	if metrics == "" {
		metrics = "(HTTP_ADDR)"
	}
	return []slog.Attr{
		slog.String("HTTP_ADDR", r.HTTPAddr),
		slog.String("METRICS_ADDR", metrics),
		slog.String("REDIS_MODE", mode),
		slog.String("REDIS_ADDRS", strings.Join(r.Redis.Addrs, ",")),
		slog.Bool("REDIS_TLS", r.Redis.TLS != nil),
		slog.String("REDIS_USER", r.Redis.Username),
		slog.String("REDIS_PASSWORD", pass),
		slog.Int("REDIS_DB", r.Redis.DB),
		slog.String("REDIS_KEY_PREFIX", r.Redis.KeyPrefix),
		slog.String("REDIS_DIAL_TIMEOUT", Duration(r.Redis.DialTimeout)),
		slog.String("REDIS_COMMAND_TIMEOUT", Duration(r.Redis.CommandTimeout)),
		slog.String("DATABASE_URL", r.DatabaseURL),
		slog.String("RATE_LIMIT_API", Rate(r.RateLimitAPI)),
		slog.String("RATE_LIMIT_LOGIN", Rate(r.RateLimitLogin)),
		slog.String("TRUSTED_PROXIES", strings.Join(proxies, ",")),
		slog.String("SESSION_IDLE_TIMEOUT", Duration(r.SessionIdleTimeout)),
		slog.String("SESSION_ABSOLUTE_TIMEOUT", Duration(r.SessionAbsoluteTimeout)),
		slog.String("SESSION_TOUCH_INTERVAL", Duration(r.SessionTouchInterval)),
		slog.String("LOG_LEVEL", r.LogLevel.String()),
		slog.String("SHUTDOWN_DELAY", Duration(r.ShutdownDelay)),
		slog.String("SHUTDOWN_TIMEOUT", Duration(r.ShutdownTimeout)),
		slog.Int("CACHE_WARM", r.CacheWarm),
		slog.String("OTEL_EXPORTER_OTLP_ENDPOINT", redactURL(r.OTLPEndpoint)), // "" when off
		slog.String("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
	}
}
