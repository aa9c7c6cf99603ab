package redisx_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/redisx"
)

// pwMark starts every password in these tests: no error text has it.
const pwMark = "Zq9"

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    redisx.Config
		wantIn string // "" means valid
	}{
		{"zero value", redisx.Config{}, ""},
		{"cluster seeds", redisx.Config{Cluster: true, Addrs: []string{"a:1", "b:2"}}, ""},
		{"sentinels", redisx.Config{SentinelMaster: "mymaster", Addrs: []string{"s1:26379", "s2:26379"}}, ""},
		{"IPv6", redisx.Config{Addrs: []string{"[::1]:6379"}}, ""},
		{"cluster and sentinel", redisx.Config{Cluster: true, SentinelMaster: "m"}, "mutually exclusive"},
		{"no port", redisx.Config{Addrs: []string{"localhost"}}, "Addrs[0]: want host:port"},
		{"port 0", redisx.Config{Addrs: []string{"h:0"}}, "port must be 1-65535"},
		{"port 65536", redisx.Config{Addrs: []string{"h:65536"}}, "port must be 1-65535"},
		{"port abc", redisx.Config{Addrs: []string{"h:abc"}}, "port"},
		{"no host", redisx.Config{Addrs: []string{":6379"}}, "bad host"},
		{"space in host", redisx.Config{Addrs: []string{"h o:1"}}, "bad host"},
		{"NUL in host", redisx.Config{Addrs: []string{"h\x00:1"}}, "bad host"},
		{"password in host", redisx.Config{Addrs: []string{pwMark + "@h:1"}}, "Addrs[0]: bad host"},
		{"standalone with two", redisx.Config{Addrs: []string{"a:1", "b:2"}}, "one address"},
		{"DB -1", redisx.Config{DB: -1}, "DB must be"},
		{"DB too big", redisx.Config{DB: 1<<16 + 1}, "DB must be"},
		{"cluster DB", redisx.Config{Cluster: true, DB: 1}, "only database 0"},
		{"prefix with a brace", redisx.Config{KeyPrefix: "a{"}, "KeyPrefix"},
		{"prefix too long", redisx.Config{KeyPrefix: strings.Repeat("a", 65)}, "64"},
		{"negative dial timeout", redisx.Config{DialTimeout: -time.Second}, "DialTimeout must not be negative"},
		{"negative command timeout", redisx.Config{CommandTimeout: -1}, "CommandTimeout must not be negative"},
		{"negative breaker", redisx.Config{BreakerOpenFor: -1}, "BreakerOpenFor"},
		{"negative local cache", redisx.Config{LocalCacheBytes: -1}, "LocalCacheBytes"},
		{"sentinel master with space", redisx.Config{SentinelMaster: "my master"}, "SentinelMaster"},
		{"client name with space", redisx.Config{ClientName: "my app"}, "ClientName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Password = pwMark + "-secret"
			err := tt.cfg.Validate()
			if tt.wantIn == "" {
				if err != nil {
					t.Fatalf("Validate = %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, redisx.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("Validate = %v; want ErrInvalidConfig saying %q", err, tt.wantIn)
			}
			if strings.Contains(err.Error(), pwMark) {
				t.Errorf("Validate error %q shows the password", err)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	type want struct {
		addr, user, pass string
		db               int
		tls              bool
	}
	valid := []struct {
		raw  string
		want want
	}{
		{"redis://localhost", want{addr: "localhost:6379"}},
		{"redis://h:6380/3", want{addr: "h:6380", db: 3}},
		{"redis://:pw@h", want{addr: "h:6379", pass: "pw"}},
		{"redis://user:pw@h:1/2", want{addr: "h:1", user: "user", pass: "pw", db: 2}},
		{"redis://pw-alone@h", want{addr: "h:6379", pass: "pw-alone"}},
		{"rediss://u:pw@cache.example/1", want{addr: "cache.example:6379", user: "u", pass: "pw", db: 1, tls: true}},
		{"redis://h?db=4", want{addr: "h:6379", db: 4}},
		{"redis://h/", want{addr: "h:6379"}},
		{"redis://[::1]:7000/0", want{addr: "[::1]:7000"}},
		{"redis://:p%40ss%2Fw%3Ard%23%3F@h", want{addr: "h:6379", pass: "p@ss/w:rd#?"}},
	}
	for _, tt := range valid {
		t.Run(tt.raw, func(t *testing.T) {
			cfg, err := redisx.ParseURL(tt.raw)
			if err != nil {
				t.Fatalf("ParseURL = %v; want %+v", err, tt.want)
			}
			got := want{cfg.Addrs[0], cfg.Username, cfg.Password, cfg.DB, cfg.TLS != nil}
			if got != tt.want {
				t.Errorf("got %+v; want %+v", got, tt.want)
			}
			if tt.want.tls && cfg.TLS.ServerName != "cache.example" {
				t.Errorf("TLS ServerName = %q; want the host", cfg.TLS.ServerName)
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("parsed config does not validate: %v", err)
			}
		})
	}
	invalid := []struct{ raw, wantIn string }{
		{"http://u:" + pwMark + "x@h", "scheme"},
		{"redis://", "missing host"},
		{"redis:h:6379", "missing host"},
		{"redis://:" + pwMark + "@", "missing host"},
		{"redis://h:0", "port"},
		{"redis://h:65536", "port"},
		{"redis://h:abc", "not a valid URL"},
		{"redis://h/abc", "database number"},
		{"redis://h/-1", "database number"},
		{"redis://h/1/2", "database number"},
		{"redis://h/99999999999999999999", "database number"},
		{"redis://u:" + pwMark + "p@ss/word@h:6379/0", "percent-encode"},
		{"redis://u:" + pwMark + "a/b@h", ""},
		{"redis://:" + pwMark + "a#b@h", ""},
		{"redis://:" + pwMark + "a?b@h", ""},
		{"redis://h?password=" + pwMark, "query"},
		{"redis://h?db=1&db=2", "query"},
		{"redis://h?db=x", "db must be"},
		{"redis://h#" + pwMark, "unexpected text"},
		{"redis://:" + pwMark + "\x00@h", "not a valid URL"},
		{"redis://h o", "not a valid URL"},
		{"", "scheme"},
	}
	for _, tt := range invalid {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := redisx.ParseURL(tt.raw)
			if !errors.Is(err, redisx.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("ParseURL = %v; want ErrInvalidConfig saying %q", err, tt.wantIn)
			}
			if strings.Contains(err.Error(), pwMark) {
				t.Errorf("error %q shows (part of) the password", err)
			}
		})
	}
}

// FuzzParseURL: ParseURL never panics, its errors never show the password
// however mangled the URL, and a parsed Config never prints it.
func FuzzParseURL(f *testing.F) {
	f.Add("pw", "h:6379/0")
	f.Add("p@ss/w", "h:6379/0")
	f.Add("a#b?c", "h")
	f.Add("", "[::1]:1/?db=2")
	f.Add("x", "h/99999999999")
	f.Fuzz(func(t *testing.T, pw, rest string) {
		pass := pwMark + pw
		for _, raw := range []string{"redis://u:" + pass + "@" + rest, "rediss://" + pass + "@" + rest, "redis://" + rest + pass} {
			cfg, err := redisx.ParseURL(raw)
			if err != nil {
				if strings.Contains(err.Error(), pwMark) {
					t.Fatalf("ParseURL(%q) error %q shows the password", raw, err)
				}
				continue
			}
			_ = cfg.Validate()
			for _, s := range []string{cfg.String(), fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)} {
				// Only our marked password counts: a one-letter one is in any text.
				if strings.HasPrefix(cfg.Password, pwMark) && strings.Contains(s, cfg.Password) {
					t.Fatalf("Config of %q prints the password: %s", raw, s)
				}
			}
		}
	})
}
