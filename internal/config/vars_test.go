package config_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/config"
	"github.com/theaterscriptpro/tsp/ratelimit"
)

// TestVarsCoverLoad checks that Vars names exactly the variables Load reads:
// a variable added to Load but not to the table (or the reverse) fails here,
// so `theaterd -h`, README.md and .env.example cannot miss it.
func TestVarsCoverLoad(t *testing.T) {
	t.Parallel()
	read := map[string]bool{}
	// Every variable set, so that every branch that reads one runs:
	// REDIS_URL hides the host/port variables and cluster hides sentinel, so
	// Load runs three times.
	for _, e := range []map[string]string{
		{},
		{"REDIS_URL": "redis://h:1/0"},
		{"REDIS_SENTINEL_ADDRS": "s:26379", "REDIS_SENTINEL_MASTER": "m"},
		{"REDIS_CLUSTER_ADDRS": "a:1"},
	} {
		_, _ = config.Load(func(k string) string { read[k] = true; return e[k] })
	}
	table := map[string]bool{}
	for _, v := range config.Vars {
		if table[v.Name] {
			t.Errorf("Vars lists %s twice", v.Name)
		}
		table[v.Name] = true
		if v.Meaning == "" {
			t.Errorf("Vars: %s has no meaning", v.Name)
		}
	}
	for name := range read {
		if !table[name] {
			t.Errorf("Load reads %s, which Vars does not list", name)
		}
	}
	for name := range table {
		if !read[name] {
			t.Errorf("Vars lists %s, which Load never reads", name)
		}
	}
}

// TestVarDefaultsAreLoadDefaults sets every variable to the default Vars
// shows for it and expects the same Config as with nothing set: the table
// cannot advertise a default Load does not use.
func TestVarDefaultsAreLoadDefaults(t *testing.T) {
	t.Parallel()
	defaults := map[string]string{}
	for _, v := range config.Vars {
		if v.Default != "" {
			defaults[v.Name] = v.Default
		}
	}
	got, err := config.Load(env(defaults))
	if err != nil {
		t.Fatalf("Load(the table's defaults): %v", err)
	}
	want, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the table's defaults load as\n%s\nbut nothing set loads as\n%s", got, want)
	}
}

// TestREADMEListsVars holds README.md's configuration table to Vars: the
// same names in the same order, with the same defaults.
func TestREADMEListsVars(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*)` \\| ([^|]*) \\|")
	var names []string
	defaults := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		names = append(names, m[1])
		defaults[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
	}
	var want []string
	for _, v := range config.Vars {
		want = append(want, v.Name)
		d := defaults[v.Name]
		if d == "—" || d == "none" {
			d = ""
		}
		if _, listed := defaults[v.Name]; listed && d != v.Default {
			t.Errorf("README.md: %s defaults to %q; Vars says %q", v.Name, d, v.Default)
		}
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("README.md's table lists\n%v\nVars lists\n%v", names, want)
	}
}

// TestStartupLineHumanReadable checks that the logged configuration shows
// durations and rates as one writes them, not as nanoseconds or "1m0s".
func TestStartupLineHumanReadable(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(env(map[string]string{"SHUTDOWN_DELAY": "90s", "RATE_LIMIT_LOGIN": "off"}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("theaterd starting", "config", cfg)
	var line struct{ Config map[string]any }
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"SESSION_IDLE_TIMEOUT":     "24h",
		"SESSION_ABSOLUTE_TIMEOUT": "168h",
		"SESSION_TOUCH_INTERVAL":   "1m",
		"REDIS_DIAL_TIMEOUT":       "2s",
		"REDIS_COMMAND_TIMEOUT":    "1s",
		"RATE_LIMIT_API":           "600/1m",
		"RATE_LIMIT_LOGIN":         "off",
		"SHUTDOWN_DELAY":           "1m30s",
		"SHUTDOWN_TIMEOUT":         "15s",
		"METRICS_ADDR":             "(HTTP_ADDR)",
	}
	for k, v := range want {
		if line.Config[k] != v {
			t.Errorf("start-up line %s = %#v; want %#v", k, line.Config[k], v)
		}
	}
	// Every variable of the table appears in the line (REDIS_URL and the
	// other Redis address variables are shown as REDIS_MODE/REDIS_ADDRS).
	var missing []string
	for _, v := range config.Vars {
		switch v.Name {
		case "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_CLUSTER_ADDRS", "REDIS_SENTINEL_ADDRS", "REDIS_SENTINEL_MASTER":
			continue
		}
		if _, ok := line.Config[v.Name]; !ok {
			missing = append(missing, v.Name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("start-up line lacks %v:\n%s", missing, buf.String())
	}
}

func TestDurationAndRateFormat(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0s", 500 * time.Millisecond: "500ms", 2 * time.Second: "2s", time.Minute: "1m",
		90 * time.Second: "1m30s", time.Hour: "1h", 24 * time.Hour: "24h", 90 * time.Minute: "1h30m",
		time.Hour + 30*time.Second: "1h0m30s", 8760 * time.Hour: "8760h",
	} {
		if got := config.Duration(d); got != want {
			t.Errorf("Duration(%v) = %q; want %q", d, got, want)
		}
		if got, err := time.ParseDuration(config.Duration(d)); err != nil || got != d {
			t.Errorf("Duration(%v) = %q does not parse back: %v, %v", d, config.Duration(d), got, err)
		}
	}
	for _, tt := range []struct {
		r    ratelimit.Rate
		want string
	}{
		{ratelimit.Rate{Limit: 600, Window: time.Minute}, "600/1m"},
		{ratelimit.Rate{Limit: 5, Window: 24 * time.Hour}, "5/24h"},
		{ratelimit.Rate{}, "off"},
	} {
		if got := config.Rate(tt.r); got != tt.want {
			t.Errorf("Rate(%v) = %q; want %q", tt.r, got, tt.want)
		}
	}
}

func TestShutdownDelayAndMetricsAddr(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(env(map[string]string{"SHUTDOWN_DELAY": "0", "METRICS_ADDR": "127.0.0.1:9090"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ShutdownDelay != 0 || cfg.MetricsAddr != "127.0.0.1:9090" {
		t.Errorf("ShutdownDelay %v, MetricsAddr %q; want 0 and 127.0.0.1:9090", cfg.ShutdownDelay, cfg.MetricsAddr)
	}
	cfg, err = config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ShutdownDelay != config.DefaultShutdownDelay || cfg.MetricsAddr != "" {
		t.Errorf("defaults: ShutdownDelay %v, MetricsAddr %q; want %v and none", cfg.ShutdownDelay, cfg.MetricsAddr, config.DefaultShutdownDelay)
	}
}
