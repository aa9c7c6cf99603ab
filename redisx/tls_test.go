package redisx_test

// Authentication and TLS against real redis-server processes: requirepass,
// an ACL user (--user), and TLS with a CA made in the test. Right settings
// work; wrong ones fail with ErrUnavailable (after DialTimeout at most) and
// a log line that says why, and neither the error nor the log nor the
// metrics ever carry the password.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/theaterscriptpro/tsp/internal/logbuf"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// The passwords are distinctive so a leak anywhere is easy to find.
const (
	serverPassword = "Sekr1t-requirepass-7f3a"
	aclPassword    = "Sekr1t-acl-user-91bd"
)

// dialResult is what one connection attempt produced.
type dialResult struct {
	err  error  // of a call (Set) after New
	logs string // everything the client logged
	took time.Duration
}

// tryClient makes a client for cfg, runs one Set and returns what happened;
// the client is closed at once. The Set is retried briefly, so a right
// configuration is given every chance to connect.
func tryClient(t *testing.T, cfg redisx.Config) dialResult {
	t.Helper()
	var logs logbuf.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = redistest.Prefix(t)
	}
	if cfg.DialTimeout == 0 {
		// Generous, so that on a loaded machine the first attempt gets as
		// far as AUTH and its log line names the real cause, not a timeout.
		cfg.DialTimeout = 5 * time.Second
	}
	ctx := context.Background()
	start := time.Now()
	rdb, err := redisx.New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v; want a client (only a bad Config is an error)", err)
	}
	defer rdb.Close()
	k := rdb.Keys().Tagged("script", "auth")
	for {
		err = rdb.Set(ctx, k, []byte("v"), time.Minute)
		if err == nil || time.Since(start) > 2*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil {
		if v, found, gerr := rdb.Get(ctx, k); gerr != nil || !found || string(v) != "v" {
			err = fmt.Errorf("get after set = %q, %v, %v", v, found, gerr)
		}
		_, _ = rdb.Delete(ctx, k)
	}
	took := time.Since(start)
	// The metrics must not carry secrets either.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(rdb.Collector())
	mfs, gerr := reg.Gather()
	if gerr != nil {
		t.Fatal(gerr)
	}
	var metrics bytes.Buffer
	for _, mf := range mfs {
		_, _ = expfmt.MetricFamilyToText(&metrics, mf)
	}
	rdb.Close()
	return dialResult{err: err, logs: logs.String() + metrics.String(), took: took}
}

// noSecret fails the test if s contains any password.
func noSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{serverPassword, aclPassword, "wrong-" + serverPassword, "wrong-" + aclPassword} {
		if strings.Contains(s, secret) {
			t.Errorf("%s carries a password:\n%s", what, s)
		}
	}
}

type authCase struct {
	name    string
	cfg     func() redisx.Config
	ok      bool
	logHint string // in the logs when !ok, says what went wrong; "a|b": either
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(strings.ToLower(s), strings.ToLower(sub)) {
			return true
		}
	}
	return false
}

func runAuthCases(t *testing.T, cases []authCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := tryClient(t, tc.cfg())
			noSecret(t, "the error", fmt.Sprint(got.err))
			noSecret(t, "the logs and metrics", got.logs)
			switch {
			case tc.ok && got.err != nil:
				t.Fatalf("call = %v; want success\nlogs:\n%s", got.err, got.logs)
			case !tc.ok && got.err == nil:
				t.Fatalf("call succeeded; want it refused")
			case !tc.ok && !errors.Is(got.err, redisx.ErrUnavailable):
				t.Errorf("call = %v; want ErrUnavailable", got.err)
			case !tc.ok && !containsAny(got.logs, strings.Split(tc.logHint, "|")):
				t.Errorf("logs do not say why (want %q in them):\n%s", tc.logHint, got.logs)
			}
		})
	}
}

func TestRequirePass(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--requirepass", serverPassword)
	base := redisx.Config{Addrs: []string{srv.Addr}}
	with := func(edit func(*redisx.Config)) func() redisx.Config {
		return func() redisx.Config { c := base; edit(&c); return c }
	}
	url := func(u string) func() redisx.Config {
		return func() redisx.Config {
			c, err := redisx.ParseURL(u)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			return c
		}
	}
	runAuthCases(t, []authCase{
		{"right password", with(func(c *redisx.Config) { c.Password = serverPassword }), true, ""},
		{"right password in URL", url("redis://:" + serverPassword + "@" + srv.Addr + "/0"), true, ""},
		{"password alone in URL", url("redis://" + serverPassword + "@" + srv.Addr), true, ""},
		{"wrong password", with(func(c *redisx.Config) { c.Password = "wrong-" + serverPassword }), false, "WRONGPASS"},
		{"no password", with(func(*redisx.Config) {}), false, "NOAUTH"},
		{"wrong password in URL", url("redis://:wrong-" + serverPassword + "@" + srv.Addr), false, "WRONGPASS"},
	})
}

func TestACLUser(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	// The app's user may touch only keys under its prefix; the default
	// user is off, so a client without credentials gets nothing.
	// redis-server joins the words after --user into one config line.
	srv := redistest.StartServer(t,
		"--user", "app", "on", ">"+aclPassword, "~"+prefix+"*", "&*", "+@all",
		"--user", "default", "off")
	base := redisx.Config{Addrs: []string{srv.Addr}, KeyPrefix: prefix}
	with := func(edit func(*redisx.Config)) func() redisx.Config {
		return func() redisx.Config { c := base; edit(&c); return c }
	}
	runAuthCases(t, []authCase{
		{"right user and password", with(func(c *redisx.Config) { c.Username, c.Password = "app", aclPassword }), true, ""},
		{"right user in URL", func() redisx.Config {
			c, err := redisx.ParseURL("redis://app:" + aclPassword + "@" + srv.Addr + "/0")
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			c.KeyPrefix = prefix
			return c
		}, true, ""},
		{"wrong password", with(func(c *redisx.Config) { c.Username, c.Password = "app", "wrong-"+aclPassword }), false, "WRONGPASS"},
		{"unknown user", with(func(c *redisx.Config) { c.Username, c.Password = "nobody", aclPassword }), false, "WRONGPASS"},
		{"password without user", with(func(c *redisx.Config) { c.Password = aclPassword }), false, "WRONGPASS"},
		{"no credentials", with(func(*redisx.Config) {}), false, "NOAUTH"},
	})

	// With the ACL in force, everything the client does stays under its
	// prefix: a key outside it is refused by Redis (NOPERM), which is an
	// answer about the command, not a Redis outage.
	t.Run("keys outside the prefix are refused", func(t *testing.T) {
		t.Parallel()
		cfg := base
		cfg.Username, cfg.Password = "app", aclPassword
		rdb := redistest.Connect(t, cfg)
		ctx := context.Background()
		if _, err := rdb.Incr(ctx, rdb.Keys().Tagged("views:script", "1"), time.Minute); err != nil {
			t.Fatalf("Incr under the prefix: %v", err)
		}
		other, err := redisx.NewKeys("elsewhere:")
		if err != nil {
			t.Fatal(err)
		}
		err = rdb.Set(ctx, other.Tagged("script", "1"), []byte("x"), time.Minute)
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("Set outside the prefix: %v; want NOPERM", err)
		}
		if errors.Is(err, redisx.ErrUnavailable) {
			t.Errorf("NOPERM reported as ErrUnavailable: %v; it is an answer, Redis is up", err)
		}
		if err := rdb.Ping(ctx); err != nil {
			t.Errorf("Ping after a refused command: %v; want the client healthy", err)
		}
	})
}

func TestTLS(t *testing.T) {
	t.Parallel()
	certs := redistest.NewTLSCerts(t)
	srv := redistest.StartTLSServer(t, certs, "--requirepass", serverPassword)
	_, port, _ := net.SplitHostPort(srv.Addr)
	tlsURL := func(host, pass string) func() redisx.Config {
		return func() redisx.Config {
			c, err := redisx.ParseURL("rediss://:" + pass + "@" + net.JoinHostPort(host, port) + "/0")
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if c.TLS == nil {
				t.Fatal("ParseURL(rediss://...) left Config.TLS nil; want TLS on")
			}
			c.TLS.RootCAs = certs.Pool
			return c
		}
	}
	otherCA := redistest.NewTLSCerts(t)
	wrongNameCerts := redistest.NewTLSCerts(t, "redis.example.internal")
	wrongNameSrv := redistest.StartTLSServer(t, wrongNameCerts)

	runAuthCases(t, []authCase{
		{"rediss with the test CA", tlsURL("127.0.0.1", serverPassword), true, ""},
		{"rediss by DNS name", tlsURL("localhost", serverPassword), true, ""},
		{"rediss with a wrong CA", func() redisx.Config {
			c := tlsURL("127.0.0.1", serverPassword)()
			c.TLS.RootCAs = otherCA.Pool
			return c
		}, false, "certificate signed by unknown authority"},
		{"rediss with the system CAs", func() redisx.Config {
			c := tlsURL("127.0.0.1", serverPassword)()
			c.TLS.RootCAs = nil
			return c
		}, false, "certificate"},
		{"rediss to a host the certificate does not name", func() redisx.Config {
			c, err := redisx.ParseURL("rediss://" + wrongNameSrv.Addr)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			c.TLS.RootCAs = wrongNameCerts.Pool
			return c
		}, false, "cannot validate certificate for 127.0.0.1"},
		{"rediss with a wrong password", tlsURL("127.0.0.1", "wrong-"+serverPassword), false, "WRONGPASS"},
		{"plain redis to the TLS port", func() redisx.Config {
			return redisx.Config{Addrs: []string{srv.Addr}, Password: serverPassword}
		}, false, "connection reset|EOF"},
	})
}
