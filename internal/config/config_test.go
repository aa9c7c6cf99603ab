package config_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/clientip"
	"github.com/theaterscriptpro/tsp/internal/config"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

// env turns a map into a getenv.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// secret is a password no error text can contain by accident.
const secret = "Zq9-p@ss/w:rd?#%"

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(env(nil))
	if err != nil {
		t.Fatalf("Load(empty) = %v; want the defaults", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"HTTPAddr", cfg.HTTPAddr, ":8080"},
		{"Redis.Addrs", cfg.Redis.Addrs, []string{"localhost:6379"}},
		{"Redis.Password", cfg.Redis.Password, ""},
		{"Redis.DB", cfg.Redis.DB, 0},
		{"Redis.Cluster", cfg.Redis.Cluster, false},
		{"Redis.SentinelMaster", cfg.Redis.SentinelMaster, ""},
		{"Redis.KeyPrefix", cfg.Redis.KeyPrefix, "tsp:"},
		{"Redis.DialTimeout", cfg.Redis.DialTimeout, 2 * time.Second},
		{"Redis.CommandTimeout", cfg.Redis.CommandTimeout, time.Second},
		{"DatabaseURL", cfg.DatabaseURL, "sqlite:./data/theater.db"},
		{"RateLimitAPI", cfg.RateLimitAPI, ratelimit.Rate{Limit: 600, Window: time.Minute}},
		{"RateLimitLogin", cfg.RateLimitLogin, ratelimit.Rate{Limit: 5, Window: time.Minute}},
		{"TrustedProxies", len(cfg.TrustedProxies), 0},
		{"SessionIdleTimeout", cfg.SessionIdleTimeout, 24 * time.Hour},
		{"SessionAbsoluteTimeout", cfg.SessionAbsoluteTimeout, 168 * time.Hour},
		{"SessionTouchInterval", cfg.SessionTouchInterval, time.Minute},
		{"LogLevel", cfg.LogLevel, slog.LevelInfo},
		{"ShutdownTimeout", cfg.ShutdownTimeout, 15 * time.Second},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
	if err := cfg.Redis.Validate(); err != nil {
		t.Errorf("default Redis config does not validate: %v", err)
	}
}

func TestLoadValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c config.Config)
	}{
		{"host, port, password, db", map[string]string{
			"REDIS_HOST": "redis.internal", "REDIS_PORT": "6380", "REDIS_PASSWORD": secret, "REDIS_DB": "3",
		}, func(t *testing.T, c config.Config) {
			if !reflect.DeepEqual(c.Redis.Addrs, []string{"redis.internal:6380"}) || c.Redis.Password != secret || c.Redis.DB != 3 {
				t.Errorf("got %v pass-ok=%v db %d; want redis.internal:6380, the password, 3", c.Redis.Addrs, c.Redis.Password == secret, c.Redis.DB)
			}
		}},
		{"password kept as it is, spaces included", map[string]string{"REDIS_PASSWORD": "  spaced out  "},
			func(t *testing.T, c config.Config) {
				if c.Redis.Password != "  spaced out  " {
					t.Errorf("password = %q; want it untrimmed", c.Redis.Password)
				}
			}},
		{"IPv6 host", map[string]string{"REDIS_HOST": "::1"}, func(t *testing.T, c config.Config) {
			if c.Redis.Addrs[0] != "[::1]:6379" {
				t.Errorf("addr = %q; want [::1]:6379", c.Redis.Addrs[0])
			}
		}},
		{"values are trimmed", map[string]string{"REDIS_PORT": " 6390\t", "LOG_LEVEL": " DEBUG "}, func(t *testing.T, c config.Config) {
			if c.Redis.Addrs[0] != "localhost:6390" || c.LogLevel != slog.LevelDebug {
				t.Errorf("got %v, %v; want localhost:6390, DEBUG", c.Redis.Addrs, c.LogLevel)
			}
		}},
		{"REDIS_URL overrides the four", map[string]string{
			"REDIS_URL":  "rediss://app:Zq9-p%40ss%2Fw%3Ard%3F%23%25@cache.example:6390/2",
			"REDIS_HOST": "ignored", "REDIS_PORT": "abc", "REDIS_PASSWORD": "ignored", "REDIS_DB": "-1",
		}, func(t *testing.T, c config.Config) {
			if c.Redis.Addrs[0] != "cache.example:6390" || c.Redis.Username != "app" || c.Redis.Password != secret || c.Redis.DB != 2 || c.Redis.TLS == nil {
				t.Errorf("got addrs %v user %q pass-ok %v db %d tls %v", c.Redis.Addrs, c.Redis.Username, c.Redis.Password == secret, c.Redis.DB, c.Redis.TLS != nil)
			}
		}},
		{"cluster seeds with credentials from REDIS_URL", map[string]string{
			"REDIS_URL": "redis://:pw@ignored:1", "REDIS_CLUSTER_ADDRS": "10.0.0.1:7000, 10.0.0.2:7001,node-3:7002",
		}, func(t *testing.T, c config.Config) {
			want := []string{"10.0.0.1:7000", "10.0.0.2:7001", "node-3:7002"}
			if !c.Redis.Cluster || !reflect.DeepEqual(c.Redis.Addrs, want) || c.Redis.Password != "pw" {
				t.Errorf("got cluster %v addrs %v; want cluster %v", c.Redis.Cluster, c.Redis.Addrs, want)
			}
		}},
		{"sentinel", map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379,s2:26379", "REDIS_SENTINEL_MASTER": "mymaster"},
			func(t *testing.T, c config.Config) {
				if c.Redis.SentinelMaster != "mymaster" || len(c.Redis.Addrs) != 2 {
					t.Errorf("got master %q addrs %v", c.Redis.SentinelMaster, c.Redis.Addrs)
				}
			}},
		{"prefix and timeouts", map[string]string{"REDIS_KEY_PREFIX": "prod:tsp:", "REDIS_DIAL_TIMEOUT": "500ms", "REDIS_COMMAND_TIMEOUT": "250ms"},
			func(t *testing.T, c config.Config) {
				if c.Redis.KeyPrefix != "prod:tsp:" || c.Redis.DialTimeout != 500*time.Millisecond || c.Redis.CommandTimeout != 250*time.Millisecond {
					t.Errorf("got %q %v %v", c.Redis.KeyPrefix, c.Redis.DialTimeout, c.Redis.CommandTimeout)
				}
			}},
		{"postgres and limits", map[string]string{
			"DATABASE_URL": "postgres://u:pw@db:5432/tsp?sslmode=disable", "RATE_LIMIT_API": "off", "RATE_LIMIT_LOGIN": "10/30s",
			"HTTP_ADDR": "127.0.0.1:0",
		}, func(t *testing.T, c config.Config) {
			if c.DatabaseURL != "postgres://u:pw@db:5432/tsp?sslmode=disable" || !c.RateLimitAPI.Off() ||
				c.RateLimitLogin != (ratelimit.Rate{Limit: 10, Window: 30 * time.Second}) || c.HTTPAddr != "127.0.0.1:0" {
				t.Errorf("got %q %v %v %q", c.DatabaseURL, c.RateLimitAPI, c.RateLimitLogin, c.HTTPAddr)
			}
		}},
		{"postgresql scheme", map[string]string{"DATABASE_URL": "postgresql://db/tsp"}, func(t *testing.T, c config.Config) {
			if c.DatabaseURL != "postgresql://db/tsp" {
				t.Errorf("DatabaseURL = %q", c.DatabaseURL)
			}
		}},
		{"trusted proxies: CIDRs and bare IPs", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,fd00::/8,::1,10.1.2.3/16"},
			func(t *testing.T, c config.Config) {
				want := []netip.Prefix{
					netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
					netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.1.0.0/16"),
				}
				if !reflect.DeepEqual(c.TrustedProxies, want) {
					t.Errorf("TrustedProxies = %v; want %v", c.TrustedProxies, want)
				}
			}},
		{"tracing on", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			func(t *testing.T, c config.Config) {
				if c.OTLPEndpoint != "http://collector:4318" {
					t.Errorf("OTLPEndpoint = %q", c.OTLPEndpoint)
				}
			}},
		{"sessions, log level, shutdown", map[string]string{
			"SESSION_IDLE_TIMEOUT": "30m", "SESSION_ABSOLUTE_TIMEOUT": "30m", "SESSION_TOUCH_INTERVAL": "0",
			"LOG_LEVEL": "warn", "SHUTDOWN_TIMEOUT": "1m30s",
		}, func(t *testing.T, c config.Config) {
			if c.SessionIdleTimeout != 30*time.Minute || c.SessionAbsoluteTimeout != 30*time.Minute || c.SessionTouchInterval != 0 ||
				c.LogLevel != slog.LevelWarn || c.ShutdownTimeout != 90*time.Second {
				t.Errorf("got %v %v %v %v %v", c.SessionIdleTimeout, c.SessionAbsoluteTimeout, c.SessionTouchInterval, c.LogLevel, c.ShutdownTimeout)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load(env(tt.env))
			if err != nil {
				t.Fatalf("Load = %v; want no error", err)
			}
			if err := c.Redis.Validate(); err != nil {
				t.Errorf("Redis config does not validate: %v", err)
			}
			tt.check(t, c)
		})
	}
}

// TestLoadBad gives each variable malformed and hostile values. Every case
// must fail with exactly the named variables, one line each, and no line
// may contain the password (REDIS_PASSWORD is set to secret in every case
// that does not set it otherwise).
func TestLoadBad(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 300)
	tests := []struct {
		name   string
		env    map[string]string
		want   []string // variables named, in order
		wantIn string   // a phrase the first line must contain
	}{
		{"HTTP_ADDR no port", map[string]string{"HTTP_ADDR": "localhost"}, []string{"HTTP_ADDR"}, "[host]:port"},
		{"HTTP_ADDR port too big", map[string]string{"HTTP_ADDR": ":65536"}, []string{"HTTP_ADDR"}, "0 to 65535"},
		{"HTTP_ADDR negative port", map[string]string{"HTTP_ADDR": ":-1"}, []string{"HTTP_ADDR"}, "port"},
		{"HTTP_ADDR bad host", map[string]string{"HTTP_ADDR": "ex ample:80"}, []string{"HTTP_ADDR"}, "host"},
		{"HTTP_ADDR NUL", map[string]string{"HTTP_ADDR": ":80\x00"}, []string{"HTTP_ADDR"}, "control"},
		{"HTTP_ADDR only spaces", map[string]string{"HTTP_ADDR": "   "}, []string{"HTTP_ADDR"}, "white space"},

		{"REDIS_URL not a URL", map[string]string{"REDIS_URL": "::not a url" + secret}, []string{"REDIS_URL"}, "URL"},
		{"REDIS_URL wrong scheme", map[string]string{"REDIS_URL": "http://u:Zq9pw@h:6379"}, []string{"REDIS_URL"}, "scheme"},
		{"REDIS_URL password with raw @ and /", map[string]string{"REDIS_URL": "redis://u:" + "Zq9p@ss/word" + "@h:6379/0"}, []string{"REDIS_URL"}, "percent-encode"},
		{"REDIS_URL password with raw ?#", map[string]string{"REDIS_URL": "redis://:Zq9a?b#c@h:6379"}, []string{"REDIS_URL"}, ""},
		{"REDIS_URL no host", map[string]string{"REDIS_URL": "redis://:" + secret + "@"}, []string{"REDIS_URL"}, ""},
		{"REDIS_URL port 0", map[string]string{"REDIS_URL": "redis://h:0"}, []string{"REDIS_URL"}, "port"},
		{"REDIS_URL port 65536", map[string]string{"REDIS_URL": "redis://h:65536"}, []string{"REDIS_URL"}, "port"},
		{"REDIS_URL db -1", map[string]string{"REDIS_URL": "redis://h:6379/-1"}, []string{"REDIS_URL"}, "database"},
		{"REDIS_URL db abc", map[string]string{"REDIS_URL": "redis://h:6379/abc"}, []string{"REDIS_URL"}, "database"},
		{"REDIS_URL db overflow", map[string]string{"REDIS_URL": "redis://h:6379/99999999999999999999"}, []string{"REDIS_URL"}, "database"},
		{"REDIS_URL unknown query", map[string]string{"REDIS_URL": "redis://h:6379/?password=" + "Zq9xyz"}, []string{"REDIS_URL"}, "query"},
		{"REDIS_URL NUL", map[string]string{"REDIS_URL": "redis://:Zq9\x00x@h"}, []string{"REDIS_URL"}, ""},

		{"REDIS_HOST space", map[string]string{"REDIS_HOST": "bad host"}, []string{"REDIS_HOST"}, "host"},
		{"REDIS_HOST slash", map[string]string{"REDIS_HOST": "h/x"}, []string{"REDIS_HOST"}, "host"},
		{"REDIS_HOST too long", map[string]string{"REDIS_HOST": long}, []string{"REDIS_HOST"}, "host"},
		{"REDIS_HOST with port", map[string]string{"REDIS_HOST": "h:6379"}, []string{"REDIS_HOST"}, "host"},
		{"REDIS_PORT 0", map[string]string{"REDIS_PORT": "0"}, []string{"REDIS_PORT"}, "1 to 65535"},
		{"REDIS_PORT 65536", map[string]string{"REDIS_PORT": "65536"}, []string{"REDIS_PORT"}, "1 to 65535"},
		{"REDIS_PORT abc", map[string]string{"REDIS_PORT": "abc"}, []string{"REDIS_PORT"}, "1 to 65535"},
		{"REDIS_PORT negative", map[string]string{"REDIS_PORT": "-6379"}, []string{"REDIS_PORT"}, "1 to 65535"},
		{"REDIS_PORT plus sign", map[string]string{"REDIS_PORT": "+6379"}, []string{"REDIS_PORT"}, "1 to 65535"},
		{"REDIS_PORT overflow", map[string]string{"REDIS_PORT": "99999999999999999999999"}, []string{"REDIS_PORT"}, "1 to 65535"},
		{"REDIS_DB -1", map[string]string{"REDIS_DB": "-1"}, []string{"REDIS_DB"}, "database number"},
		{"REDIS_DB abc", map[string]string{"REDIS_DB": "abc"}, []string{"REDIS_DB"}, "database number"},
		{"REDIS_DB too big", map[string]string{"REDIS_DB": "65537"}, []string{"REDIS_DB"}, "database number"},

		{"cluster and sentinel", map[string]string{"REDIS_CLUSTER_ADDRS": "a:1", "REDIS_SENTINEL_ADDRS": "b:2", "REDIS_SENTINEL_MASTER": "m"},
			[]string{"REDIS_CLUSTER_ADDRS"}, "Sentinel"},
		{"cluster empty element", map[string]string{"REDIS_CLUSTER_ADDRS": "a:1,,b:2"}, []string{"REDIS_CLUSTER_ADDRS"}, "address 2 of 3 is empty"},
		{"cluster no port", map[string]string{"REDIS_CLUSTER_ADDRS": "a"}, []string{"REDIS_CLUSTER_ADDRS"}, "host:port"},
		{"cluster port 0", map[string]string{"REDIS_CLUSTER_ADDRS": "a:0"}, []string{"REDIS_CLUSTER_ADDRS"}, "port"},
		{"cluster with a db", map[string]string{"REDIS_CLUSTER_ADDRS": "a:1", "REDIS_DB": "2"}, []string{"REDIS_DB"}, "only database 0"},
		{"cluster with a URL db", map[string]string{"REDIS_CLUSTER_ADDRS": "a:1", "REDIS_URL": "redis://h/2"}, []string{"REDIS_URL"}, "only database 0"},
		{"sentinel master without addrs", map[string]string{"REDIS_SENTINEL_MASTER": "mymaster"}, []string{"REDIS_SENTINEL_ADDRS"}, "required"},
		{"sentinel addrs without master", map[string]string{"REDIS_SENTINEL_ADDRS": "s:26379"}, []string{"REDIS_SENTINEL_MASTER"}, "required"},
		{"sentinel bad addr", map[string]string{"REDIS_SENTINEL_ADDRS": "s:26379,s2:x", "REDIS_SENTINEL_MASTER": "m"}, []string{"REDIS_SENTINEL_ADDRS"}, "address 2 of 2"},
		{"sentinel master with space", map[string]string{"REDIS_SENTINEL_ADDRS": "s:26379", "REDIS_SENTINEL_MASTER": "my master"}, []string{"REDIS_SENTINEL_MASTER"}, "white space"},

		{"prefix with a brace", map[string]string{"REDIS_KEY_PREFIX": "tsp{x}:"}, []string{"REDIS_KEY_PREFIX"}, "not allowed"},
		{"prefix with glob", map[string]string{"REDIS_KEY_PREFIX": "t*:"}, []string{"REDIS_KEY_PREFIX"}, "not allowed"},
		{"prefix too long", map[string]string{"REDIS_KEY_PREFIX": long}, []string{"REDIS_KEY_PREFIX"}, "64"},
		{"dial timeout without unit", map[string]string{"REDIS_DIAL_TIMEOUT": "10"}, []string{"REDIS_DIAL_TIMEOUT"}, "unit"},
		{"dial timeout negative", map[string]string{"REDIS_DIAL_TIMEOUT": "-1s"}, []string{"REDIS_DIAL_TIMEOUT"}, "negative"},
		{"dial timeout in years", map[string]string{"REDIS_DIAL_TIMEOUT": "1y"}, []string{"REDIS_DIAL_TIMEOUT"}, "Go duration"},
		{"command timeout zero", map[string]string{"REDIS_COMMAND_TIMEOUT": "0s"}, []string{"REDIS_COMMAND_TIMEOUT"}, "between"},
		{"command timeout huge", map[string]string{"REDIS_COMMAND_TIMEOUT": "2h"}, []string{"REDIS_COMMAND_TIMEOUT"}, "between"},
		{"command timeout overflow", map[string]string{"REDIS_COMMAND_TIMEOUT": "9999999999999h"}, []string{"REDIS_COMMAND_TIMEOUT"}, "Go duration"},

		{"DATABASE_URL mysql", map[string]string{"DATABASE_URL": "mysql://u:" + secret + "@h/db"}, []string{"DATABASE_URL"}, "sqlite:PATH"},
		{"DATABASE_URL sqlite without path", map[string]string{"DATABASE_URL": "sqlite:"}, []string{"DATABASE_URL"}, "file path"},
		{"DATABASE_URL bare path", map[string]string{"DATABASE_URL": "./data/theater.db"}, []string{"DATABASE_URL"}, "sqlite:PATH"},
		{"DATABASE_URL postgres with raw password", map[string]string{"DATABASE_URL": "postgres://u:Zq9a/b@c@h:5432/db"}, []string{"DATABASE_URL"}, ""},
		{"DATABASE_URL NUL", map[string]string{"DATABASE_URL": "sqlite:./x\x00.db"}, []string{"DATABASE_URL"}, "control"},

		{"RATE_LIMIT_API junk", map[string]string{"RATE_LIMIT_API": "lots"}, []string{"RATE_LIMIT_API"}, "N/DURATION"},
		{"RATE_LIMIT_API negative", map[string]string{"RATE_LIMIT_API": "-5/1m"}, []string{"RATE_LIMIT_API"}, "count"},
		{"RATE_LIMIT_API window without unit", map[string]string{"RATE_LIMIT_API": "5/60"}, []string{"RATE_LIMIT_API"}, "window"},
		{"RATE_LIMIT_LOGIN zero", map[string]string{"RATE_LIMIT_LOGIN": "0/1m"}, []string{"RATE_LIMIT_LOGIN"}, "count"},
		{"RATE_LIMIT_LOGIN overflow", map[string]string{"RATE_LIMIT_LOGIN": "99999999999999999999/1m"}, []string{"RATE_LIMIT_LOGIN"}, "count"},

		{"TRUSTED_PROXIES bad CIDR", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/33"}, []string{"TRUSTED_PROXIES"}, "CIDR"},
		{"TRUSTED_PROXIES hostname", map[string]string{"TRUSTED_PROXIES": "proxy.example"}, []string{"TRUSTED_PROXIES"}, "IP address"},
		{"TRUSTED_PROXIES trailing comma", map[string]string{"TRUSTED_PROXIES": "10.0.0.1,"}, []string{"TRUSTED_PROXIES"}, "entry 2 of 2 is empty"},
		{"TRUSTED_PROXIES zone", map[string]string{"TRUSTED_PROXIES": "fe80::1%eth0"}, []string{"TRUSTED_PROXIES"}, "IP address"},
		{"TRUSTED_PROXIES empty middle", map[string]string{"TRUSTED_PROXIES": "10.0.0.1,,10.0.0.2"}, []string{"TRUSTED_PROXIES"}, "entry 2 of 3 is empty"},
		{"TRUSTED_PROXIES mapped shorter than /96", map[string]string{"TRUSTED_PROXIES": "::ffff:10.0.0.0/80"}, []string{"TRUSTED_PROXIES"}, "shorter than /96"},
		{"TRUSTED_PROXIES glob", map[string]string{"TRUSTED_PROXIES": "10.*"}, []string{"TRUSTED_PROXIES"}, "not an IP address"},
		{"TRUSTED_PROXIES thousands of entries", map[string]string{"TRUSTED_PROXIES": strings.Repeat("10.0.0.1,", 5000) + "10.0.0.1"}, []string{"TRUSTED_PROXIES"}, "at most"},
		{"TRUSTED_PROXIES megabyte", map[string]string{"TRUSTED_PROXIES": strings.Repeat("9", 1<<20)}, []string{"TRUSTED_PROXIES"}, "entry 1 of 1"},
		{"TRUSTED_PROXIES control byte", map[string]string{"TRUSTED_PROXIES": "10.0.0.1\r\n10.0.0.2"}, []string{"TRUSTED_PROXIES"}, "control"},

		{"idle timeout without unit", map[string]string{"SESSION_IDLE_TIMEOUT": "10"}, []string{"SESSION_IDLE_TIMEOUT"}, "unit"},
		{"idle timeout negative", map[string]string{"SESSION_IDLE_TIMEOUT": "-1s"}, []string{"SESSION_IDLE_TIMEOUT"}, "negative"},
		{"idle timeout in years", map[string]string{"SESSION_IDLE_TIMEOUT": "1y"}, []string{"SESSION_IDLE_TIMEOUT"}, "Go duration"},
		{"absolute below idle", map[string]string{"SESSION_IDLE_TIMEOUT": "2h", "SESSION_ABSOLUTE_TIMEOUT": "1h"}, []string{"SESSION_ABSOLUTE_TIMEOUT"}, "at least SESSION_IDLE_TIMEOUT"},
		{"absolute below default idle", map[string]string{"SESSION_ABSOLUTE_TIMEOUT": "1h"}, []string{"SESSION_ABSOLUTE_TIMEOUT"}, "at least"},
		{"touch not below idle", map[string]string{"SESSION_IDLE_TIMEOUT": "1m", "SESSION_TOUCH_INTERVAL": "1m"}, []string{"SESSION_TOUCH_INTERVAL"}, "less than"},
		{"touch set, not below a short idle", map[string]string{"SESSION_IDLE_TIMEOUT": "2s", "SESSION_TOUCH_INTERVAL": "1m"}, []string{"SESSION_TOUCH_INTERVAL"}, "less than SESSION_IDLE_TIMEOUT (2s)"},
		{"touch not below default idle", map[string]string{"SESSION_TOUCH_INTERVAL": "48h"}, []string{"SESSION_TOUCH_INTERVAL"}, "less than SESSION_IDLE_TIMEOUT (24h0m0s)"},
		{"touch negative", map[string]string{"SESSION_IDLE_TIMEOUT": "2s", "SESSION_TOUCH_INTERVAL": "-1s"}, []string{"SESSION_TOUCH_INTERVAL"}, "negative"},
		{"touch without unit", map[string]string{"SESSION_TOUCH_INTERVAL": "30"}, []string{"SESSION_TOUCH_INTERVAL"}, "unit"},
		{"LOG_LEVEL verbose", map[string]string{"LOG_LEVEL": "verbose"}, []string{"LOG_LEVEL"}, "debug, info, warn or error"},
		{"LOG_LEVEL slog offset", map[string]string{"LOG_LEVEL": "info+2"}, []string{"LOG_LEVEL"}, "debug, info, warn or error"},
		{"SHUTDOWN_TIMEOUT zero", map[string]string{"SHUTDOWN_TIMEOUT": "0"}, []string{"SHUTDOWN_TIMEOUT"}, "between"},
		{"OTLP endpoint without scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, []string{"OTEL_EXPORTER_OTLP_ENDPOINT"}, "http:// or https://"},
		{"OTLP endpoint grpc scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://collector:4317"}, []string{"OTEL_EXPORTER_OTLP_ENDPOINT"}, "http:// or https://"},
		{"OTLP endpoint without host", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://"}, []string{"OTEL_EXPORTER_OTLP_ENDPOINT"}, "OTLP/HTTP"},
		{"OTLP endpoint control character", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a\x00b:4318"}, []string{"OTEL_EXPORTER_OTLP_ENDPOINT"}, "control character"},
		{"OTLP protocol grpc", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, []string{"OTEL_EXPORTER_OTLP_PROTOCOL"}, "http/protobuf"},
		{"SHUTDOWN_TIMEOUT negative", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, []string{"SHUTDOWN_TIMEOUT"}, "negative"},
		{"SHUTDOWN_DELAY without unit", map[string]string{"SHUTDOWN_DELAY": "5"}, []string{"SHUTDOWN_DELAY"}, "unit"},
		{"SHUTDOWN_DELAY negative", map[string]string{"SHUTDOWN_DELAY": "-5s"}, []string{"SHUTDOWN_DELAY"}, "negative"},
		{"SHUTDOWN_DELAY an hour", map[string]string{"SHUTDOWN_DELAY": "1h"}, []string{"SHUTDOWN_DELAY"}, "between 0 and 10m"},
		{"SHUTDOWN_DELAY overflow", map[string]string{"SHUTDOWN_DELAY": "9999999999999h"}, []string{"SHUTDOWN_DELAY"}, "Go duration"},
		{"SHUTDOWN_DELAY junk", map[string]string{"SHUTDOWN_DELAY": "soon"}, []string{"SHUTDOWN_DELAY"}, "Go duration"},
		{"SHUTDOWN_DELAY NUL", map[string]string{"SHUTDOWN_DELAY": "5s\x00"}, []string{"SHUTDOWN_DELAY"}, "control"},
		{"METRICS_ADDR no port", map[string]string{"METRICS_ADDR": "127.0.0.1"}, []string{"METRICS_ADDR"}, "[host]:port"},
		{"METRICS_ADDR port too big", map[string]string{"METRICS_ADDR": ":99999"}, []string{"METRICS_ADDR"}, "0 to 65535"},
		{"METRICS_ADDR a URL", map[string]string{"METRICS_ADDR": "http://127.0.0.1:9090/metrics"}, []string{"METRICS_ADDR"}, "[host]:port"},
		{"METRICS_ADDR bad host", map[string]string{"METRICS_ADDR": "a b:9090"}, []string{"METRICS_ADDR"}, "host"},
		{"METRICS_ADDR only spaces", map[string]string{"METRICS_ADDR": " \t "}, []string{"METRICS_ADDR"}, "white space"},
		{"METRICS_ADDR newline", map[string]string{"METRICS_ADDR": ":9090\n"}, []string{"METRICS_ADDR"}, "control"},
		{"METRICS_ADDR same as HTTP_ADDR", map[string]string{"HTTP_ADDR": ":8080", "METRICS_ADDR": ":8080"}, []string{"METRICS_ADDR"}, "differ from HTTP_ADDR"},
		{"METRICS_ADDR same as default HTTP_ADDR", map[string]string{"METRICS_ADDR": ":8080"}, []string{"METRICS_ADDR"}, "differ from HTTP_ADDR"},

		{"many at once, one line each", map[string]string{
			"HTTP_ADDR": "nope", "REDIS_PORT": "0", "REDIS_DB": "x", "LOG_LEVEL": "loud", "TRUSTED_PROXIES": "x", "SHUTDOWN_TIMEOUT": "10",
		}, []string{"HTTP_ADDR", "REDIS_PORT", "REDIS_DB", "TRUSTED_PROXIES", "LOG_LEVEL", "SHUTDOWN_TIMEOUT"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := map[string]string{"REDIS_PASSWORD": secret}
			for k, v := range tt.env {
				e[k] = v
			}
			_, err := config.Load(env(e))
			if err == nil {
				t.Fatalf("Load = nil error; want one naming %v", tt.want)
			}
			msg := err.Error()
			lines := strings.Split(msg, "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d lines:\n%s\nwant one for each of %v", len(lines), msg, tt.want)
			}
			for i, name := range tt.want {
				if !strings.HasPrefix(lines[i], name+": ") {
					t.Errorf("line %d = %q; want it to start with %q", i+1, lines[i], name+": ")
				}
			}
			if !strings.Contains(lines[0], tt.wantIn) {
				t.Errorf("line 1 = %q; want it to say %q", lines[0], tt.wantIn)
			}
			for _, leak := range []string{secret, "Zq9"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q contains the password (or part of it, %q)", msg, leak)
				}
			}
			var ve *config.VarError
			if !errors.As(err, &ve) || ve.Name != tt.want[0] || ve.Problem == "" {
				t.Errorf("errors.As(*VarError) = %+v; want Name %s and a Problem", ve, tt.want[0])
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(env(map[string]string{
		"REDIS_URL":    "redis://app:Zq9-s3cret@h:6379/1",
		"DATABASE_URL": "postgres://u:Zq9-dbpass@db:5432/tsp?password=Zq9-other",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", cfg)
	outputs := map[string]string{
		"String":       cfg.String(),
		"%v":           fmt.Sprintf("%v", cfg),
		"%+v":          fmt.Sprintf("%+v", cfg),
		"%#v":          fmt.Sprintf("%#v", cfg),
		"%v of Redis":  fmt.Sprintf("%v", cfg.Redis),
		"%#v of Redis": fmt.Sprintf("%#v", cfg.Redis),
		"slog":         logged.String(),
		"Redacted URL": cfg.Redacted().DatabaseURL + " 6379",
	}
	for name, out := range outputs {
		if strings.Contains(out, "Zq9") {
			t.Errorf("%s shows a password:\n%s", name, out)
		}
		if !strings.Contains(out, "6379") {
			t.Errorf("%s = %q; want the variables listed", name, out)
		}
	}
	if cfg.Redis.Password != "Zq9-s3cret" || !strings.Contains(cfg.DatabaseURL, "Zq9-dbpass") {
		t.Errorf("Redacted changed the original config")
	}
	if r := cfg.Redacted(); r.Redis.Password == "" || r.Redis.Password == cfg.Redis.Password {
		t.Errorf("Redacted().Redis.Password = %q; want a placeholder", r.Redis.Password)
	}
}

// FuzzLoad proves Load never panics and never echoes REDIS_PASSWORD, nor
// the password inside REDIS_URL, whatever the other variables hold (even
// when they contain the password themselves).
func FuzzLoad(f *testing.F) {
	f.Add("pw", ":8080", "6379", "0", "redis://u:%s@h:6379/0", "", "", "10s", "600/1m", "10.0.0.0/8")
	f.Add("p@ss/word", "nope", "abc", "-1", "redis://u:%s@h/x", "a:1,,b", "m", "10", "x", "::1/200")
	f.Add("", "", "", "", "", "", "", "", "", "")
	f.Add("x\x00y", ":80\x00", "65536", "99999999999", "rediss://%s", "a:0", "m m", "1y", "-1/1m", ",")
	f.Fuzz(func(t *testing.T, pw, addr, port, db, urlTmpl, cluster, master, dur, rate, proxies string) {
		pass := "Zq9" + pw
		e := map[string]string{
			"REDIS_PASSWORD": pass, "HTTP_ADDR": addr, "REDIS_PORT": port, "REDIS_DB": db,
			"REDIS_CLUSTER_ADDRS": cluster, "REDIS_SENTINEL_MASTER": master, "SESSION_IDLE_TIMEOUT": dur,
			"RATE_LIMIT_API": rate, "TRUSTED_PROXIES": proxies,
			// The password also lands in other variables: still never echoed.
			"REDIS_HOST": pass, "LOG_LEVEL": pass, "DATABASE_URL": "postgres://u:" + pass + "@h/db",
		}
		if strings.Contains(urlTmpl, "%s") {
			e["REDIS_URL"] = strings.Replace(urlTmpl, "%s", pass, 1)
		}
		cfg, err := config.Load(env(e))
		if err != nil {
			if strings.Contains(err.Error(), "Zq9") {
				t.Fatalf("error shows the password: %q", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if name, _, ok := strings.Cut(line, ": "); !ok || name == "" || strings.ToUpper(name) != name {
					t.Fatalf("line %q does not start with a variable name", line)
				}
			}
			return
		}
		if s := cfg.String(); strings.Contains(s, "Zq9") {
			t.Fatalf("String shows the password: %q", s)
		}
	})
}

// TestTouchIntervalFollowsIdleTimeout is issue 13's case: an unset
// SESSION_TOUCH_INTERVAL derives from the idle timeout, so any idle timeout
// the table allows starts on its own.
func TestTouchIntervalFollowsIdleTimeout(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{map[string]string{"SESSION_IDLE_TIMEOUT": "2s"}, 500 * time.Millisecond},
		{map[string]string{"SESSION_IDLE_TIMEOUT": "1s"}, 250 * time.Millisecond},
		{map[string]string{"SESSION_IDLE_TIMEOUT": "3m"}, 45 * time.Second},
		{map[string]string{"SESSION_IDLE_TIMEOUT": "4m"}, time.Minute},
		{map[string]string{"SESSION_IDLE_TIMEOUT": "8760h", "SESSION_ABSOLUTE_TIMEOUT": "8760h"}, time.Minute},
		{nil, time.Minute},
		// Set explicitly, it is taken as it is, 0 included.
		{map[string]string{"SESSION_IDLE_TIMEOUT": "2s", "SESSION_TOUCH_INTERVAL": "1500ms"}, 1500 * time.Millisecond},
		{map[string]string{"SESSION_IDLE_TIMEOUT": "2s", "SESSION_TOUCH_INTERVAL": "0s"}, 0},
	} {
		c, err := config.Load(env(tt.env))
		if err != nil {
			t.Errorf("Load(%v): %v; want it to start", tt.env, err)
			continue
		}
		if c.SessionTouchInterval != tt.want {
			t.Errorf("Load(%v): SessionTouchInterval = %v; want %v", tt.env, c.SessionTouchInterval, tt.want)
		}
		if c.SessionTouchInterval >= c.SessionIdleTimeout {
			t.Errorf("Load(%v): touch %v not below idle %v", tt.env, c.SessionTouchInterval, c.SessionIdleTimeout)
		}
	}
}

// TestMappedTrustedProxyTrustsIPv4 is issue 13's case: the CIDR config
// keeps must contain the folded client address the resolver compares.
func TestMappedTrustedProxyTrustsIPv4(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"TRUSTED_PROXIES": "::ffff:10.0.0.0/104"}))
	if err != nil {
		t.Fatal(err)
	}
	res := clientip.Resolver{Trusted: c.TrustedProxies}
	if !res.Trusts(netip.MustParseAddr("10.1.2.3")) {
		t.Fatalf("TrustedProxies = %v: does not trust 10.1.2.3", c.TrustedProxies)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.9")
	if got := res.ClientIP(r).String(); got != "198.51.100.9" {
		t.Fatalf("ClientIP behind proxy 10.1.2.3 = %s; want 198.51.100.9", got)
	}
}
