package redisx

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config configures a Client. A zero field means its documented default.
type Config struct {
	// Addrs are host:port addresses. For a standalone server, the one server
	// (default "localhost:6379"); with Cluster, seed nodes; with
	// SentinelMaster, the sentinels.
	Addrs []string

	// Cluster selects Redis Cluster; Addrs are seed nodes.
	Cluster bool

	// SentinelMaster names the master set that the sentinels in Addrs watch.
	// Setting it selects Sentinel mode.
	SentinelMaster string

	// Username and Password authenticate (AUTH / ACL). Password is never
	// logged nor put in an error.
	Username string
	Password string

	// DB is the database number (standalone and Sentinel only). Default 0.
	DB int

	// TLS, when not nil, connects with TLS (rediss://).
	TLS *tls.Config

	// DialContext, if set, makes every connection the client opens (to
	// the servers, and to the sentinels with SentinelMaster) in place of
	// a plain TCP dial: network is "tcp" and addr the address being dialled
	// as Redis announces it (a cluster node's address from CLUSTER SLOTS,
	// the master a sentinel names), not necessarily one of Addrs. With TLS
	// set, the client runs the TLS handshake over the connection it
	// returns. ctx ends at DialTimeout. Tests use it to route one node's
	// connections through a fault proxy. The default (nil) dials TCP with
	// DialTimeout and a 1s keep-alive.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// KeyPrefix starts every key the Keys builder makes. The default is "tsp:".
	KeyPrefix string

	// DialTimeout bounds connecting (and the handshake). The default is 2s.
	DialTimeout time.Duration

	// CommandTimeout is the deadline every call gets when the caller's
	// context has none or a later one. The default is 1s.
	CommandTimeout time.Duration

	// RetryStrategy returns how long to wait before reconnect attempt n
	// (n starts at 1), like ioredis's retryStrategy. The default is
	// DefaultRetryStrategy: exponential backoff from 50ms to 2s with full
	// jitter. It paces the attempts to make the first connection (a wait
	// below 10ms counts as 10ms) and rueidis's retries of idempotent
	// commands after a broken connection (a negative wait means "do not
	// retry"; those waits are at most BreakerOpenFor). Once connected, a broken connection is redialled by the next
	// call, and while Redis stays down the circuit breaker lets one probe
	// call through every BreakerOpenFor, so a dead Redis is never hammered.
	RetryStrategy func(attempt int) time.Duration

	// BreakerFailures is how many consecutive connection failures or
	// timeouts open a circuit breaker. The default is 5. A caller's
	// deadline that passes while the node kept delivering answers to other
	// calls is not counted: the node is up, only slower than that budget. Breakers are kept
	// per node: with Sentinel the current master's, in Cluster mode one per
	// master, so one master's outage does not fail calls to the others; a
	// promoted master starts with a closed breaker of its own.
	BreakerFailures uint32

	// BreakerOpenFor is how long the breaker stays open before it lets one
	// probe through (half-open). It is the longest a recovered Redis (or a
	// promoted replica) waits to be used again. The default is 250ms.
	BreakerOpenFor time.Duration

	// LocalCacheBytes caps rueidis's server-assisted client-side cache per
	// connection. The default is 32 MiB. DisableLocalCache turns it off.
	LocalCacheBytes   int
	DisableLocalCache bool

	// LocalLease is how recently the connection holding a local copy must
	// have answered for the copy to be served (local.go): the longest an
	// instance cut off from Redis by a hung connection may serve what
	// another instance changed. The default is 100ms, API.md's bound.
	LocalLease time.Duration

	// OutOfMemoryLogInterval is the least time between two "redis out of
	// memory" log lines: a full Redis refuses every write of every
	// request, and one line per interval (with the count of refusals it
	// stands for) says so without flooding the log. Every refusal is
	// counted in redisx_oom_replies_total. The default is 10s.
	OutOfMemoryLogInterval time.Duration

	// ClientName is sent with CLIENT SETNAME. The default is "theaterd".
	ClientName string

	// Logger receives connection state changes. The default discards them.
	Logger *slog.Logger

	// CommandHook, if set, sees the name of every command sent to Redis
	// (never its arguments), one call per round trip. Tests use it to count
	// round trips and to prove commands like KEYS are never sent.
	CommandHook func(names []string)

	// CommandObserver, if set, is told of every round trip as it ends: the
	// caller's context, the command names (never their arguments), when it
	// started and the error it ended with (nil for a reply, a Redis nil
	// reply included). Local cache hits make no round trip and are not
	// reported. internal/tracing makes a span of each.
	CommandObserver func(ctx context.Context, names []string, start time.Time, err error)
}

const (
	defaultAddr           = "localhost:6379"
	defaultKeyPrefix      = "tsp:"
	defaultDialTimeout    = 2 * time.Second
	defaultCommandTimeout = time.Second
	defaultBreakerFails   = 5
	defaultBreakerOpenFor = 250 * time.Millisecond
	defaultLocalCache     = 32 << 20
	defaultLocalLease     = 100 * time.Millisecond
	defaultOOMLogInterval = 10 * time.Second
)

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = []string{defaultAddr}
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = defaultKeyPrefix
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = defaultCommandTimeout
	}
	if cfg.RetryStrategy == nil {
		cfg.RetryStrategy = DefaultRetryStrategy
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = defaultBreakerFails
	}
	if cfg.BreakerOpenFor == 0 {
		cfg.BreakerOpenFor = defaultBreakerOpenFor
	}
	if cfg.LocalCacheBytes == 0 {
		cfg.LocalCacheBytes = defaultLocalCache
	}
	if cfg.LocalLease == 0 {
		cfg.LocalLease = defaultLocalLease
	}
	if cfg.OutOfMemoryLogInterval == 0 {
		cfg.OutOfMemoryLogInterval = defaultOOMLogInterval
	}
	if cfg.ClientName == "" {
		cfg.ClientName = "theaterd"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Validate reports the first problem with cfg, wrapping ErrInvalidConfig.
// The message names the field and what is wrong; it never repeats a
// value that could hold a secret (not the password, nor an address, which
// a mistyped URL can fill with part of the password).
func (cfg Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Cluster && cfg.SentinelMaster != "" {
		return bad("Cluster and SentinelMaster are mutually exclusive")
	}
	for i, a := range cfg.Addrs {
		if err := checkAddr(a); err != nil {
			return bad("Addrs[%d]: %v", i, err)
		}
	}
	if !cfg.Cluster && cfg.SentinelMaster == "" && len(cfg.Addrs) > 1 {
		return bad("a standalone server takes one address, got %d (set Cluster or SentinelMaster for more)", len(cfg.Addrs))
	}
	if cfg.DB < 0 || cfg.DB > maxDB {
		return bad("DB must be from 0 to %d", maxDB)
	}
	if cfg.Cluster && cfg.DB != 0 {
		return bad("Redis Cluster has only database 0, got DB %d", cfg.DB)
	}
	if err := checkKeyPrefix(cfg.KeyPrefix); err != nil {
		return bad("KeyPrefix: %v", err)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"DialTimeout", cfg.DialTimeout}, {"CommandTimeout", cfg.CommandTimeout}, {"BreakerOpenFor", cfg.BreakerOpenFor}, {"LocalLease", cfg.LocalLease}, {"OutOfMemoryLogInterval", cfg.OutOfMemoryLogInterval}} {
		if d.d < 0 {
			return bad("%s must not be negative", d.name)
		}
	}
	if cfg.LocalCacheBytes < 0 {
		return bad("LocalCacheBytes must not be negative")
	}
	if cfg.SentinelMaster != "" && !printableNoSpace(cfg.SentinelMaster) {
		return bad("SentinelMaster must be printable ASCII without white space")
	}
	if cfg.ClientName != "" && !printableNoSpace(cfg.ClientName) {
		// Redis refuses such a CLIENT SETNAME, and every connection would fail.
		return bad("ClientName must be printable ASCII without white space")
	}
	return nil
}

// maxDB bounds Config.DB: Redis's default is 16 databases, and no
// deployment has more than this.
const maxDB = 1 << 16

func printableNoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("want host:port")
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("bad host")
	}
	for i := 0; i < len(host); i++ {
		// Host names, IPv4, and IPv6 (with a %zone) only.
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':' || c == '%') {
			return fmt.Errorf("bad host")
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port must be 1-65535")
	}
	return nil
}

func checkKeyPrefix(p string) error {
	if len(p) > 64 {
		return fmt.Errorf("longer than 64 bytes")
	}
	for i := 0; i < len(p); i++ {
		if !safeKeyByte(p[i]) {
			return fmt.Errorf("byte %d is not allowed (letters, digits and -_.:/@+=&,!~#$();<>|^`'\" only)", i)
		}
	}
	return nil
}

// DefaultRetryStrategy waits a random time between 0 and min(2s, 50ms·2^(n-1))
// before attempt n: exponential backoff with full jitter, so many clients
// reconnecting at once do not hit a recovering Redis in lockstep.
func DefaultRetryStrategy(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	ceiling := 2 * time.Second
	d := 50 * time.Millisecond << min(attempt-1, 16)
	if d <= 0 || d > ceiling {
		d = ceiling
	}
	return rand.N(d) + time.Millisecond
}

// ParseURL reads a redis:// or rediss:// URL
// (redis://[[user]:pass@]host[:port][/db]) into a Config: "rediss" turns on
// TLS, the port defaults to 6379, the database to 0 (also ?db=N), and
// redis://secret@host (user info with no colon) is a password alone, as
// redis-cli reads it. A password with '@', '/', '?', '#' or ':' must be
// percent-encoded. Errors name what is wrong but never contain any part of
// the URL, since a mistyped URL can spread the password anywhere in it.
func ParseURL(raw string) (Config, error) {
	var cfg Config
	bad := func(what string) (Config, error) {
		return Config{}, fmt.Errorf("%w: URL: %s", ErrInvalidConfig, what)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error would echo the URL, password included.
		return bad("not a valid URL (percent-encode '@', '/', '?', '#' and ':' in the password)")
	}
	switch u.Scheme {
	case "redis":
	case "rediss":
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	default:
		return bad("scheme must be redis:// or rediss://")
	}
	if u.Host == "" || u.Opaque != "" {
		return bad("missing host (want redis://[user:pass@]host:port/db)")
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "6379"
	}
	cfg.Addrs = []string{net.JoinHostPort(host, port)}
	if err := checkAddr(cfg.Addrs[0]); err != nil {
		return bad("address: " + err.Error())
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		if pass, hasPass := u.User.Password(); hasPass {
			cfg.Password = pass
		} else {
			// redis://secret@host is the common shorthand for a password alone.
			cfg.Password, cfg.Username = cfg.Username, ""
		}
	}
	if u.Fragment != "" || strings.Contains(u.Path, "@") {
		return bad("unexpected text after the host (percent-encode '@', '/', '?', '#' and ':' in the password)")
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 || n > maxDB {
			return bad(fmt.Sprintf("the path must be /DB, a database number from 0 to %d", maxDB))
		}
		cfg.DB = n
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("malformed query")
	}
	for name, vs := range q {
		if name != "db" || len(vs) != 1 {
			return bad("the only query parameter allowed is db, once")
		}
		n, err := strconv.Atoi(vs[0])
		if err != nil || n < 0 || n > maxDB {
			return bad(fmt.Sprintf("db must be a database number from 0 to %d", maxDB))
		}
		cfg.DB = n
	}
	return cfg, nil
}

// String describes cfg for logs and %v with the password redacted; %#v
// (GoString) and log/slog (LogValue) are redacted the same way.
func (cfg Config) String() string {
	var b strings.Builder
	b.WriteString("redisx.Config{")
	for i, a := range cfg.attrs() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(a.Value.String())
	}
	b.WriteByte('}')
	return b.String()
}

// GoString is String, so %#v never prints the password either.
func (cfg Config) GoString() string { return cfg.String() }

// LogValue logs cfg as a group of its settings, password redacted.
func (cfg Config) LogValue() slog.Value { return slog.GroupValue(cfg.attrs()...) }

func (cfg Config) attrs() []slog.Attr {
	pass := ""
	if cfg.Password != "" {
		pass = "REDACTED"
	}
	return []slog.Attr{
		slog.String("Addrs", strings.Join(cfg.Addrs, ",")),
		slog.Bool("Cluster", cfg.Cluster),
		slog.String("SentinelMaster", cfg.SentinelMaster),
		slog.String("Username", cfg.Username),
		slog.String("Password", pass),
		slog.Int("DB", cfg.DB),
		slog.Bool("TLS", cfg.TLS != nil),
		slog.String("KeyPrefix", cfg.KeyPrefix),
		slog.Duration("DialTimeout", cfg.DialTimeout),
		slog.Duration("CommandTimeout", cfg.CommandTimeout),
	}
}
