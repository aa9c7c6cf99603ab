package config_test

import (
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/config"
)

func TestCacheWarm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value string
		want  int
	}{
		{"", config.DefaultCacheWarm},
		{"off", 0},
		{"OFF", 0},
		{" 20 ", 20},
		{"1", 1},
		{"1000", 1000},
	} {
		cfg, err := config.Load(env(map[string]string{"CACHE_WARM": tc.value}))
		if err != nil {
			t.Fatalf("CACHE_WARM=%q: %v", tc.value, err)
		}
		if cfg.CacheWarm != tc.want {
			t.Errorf("CACHE_WARM=%q: CacheWarm %d, want %d", tc.value, cfg.CacheWarm, tc.want)
		}
	}
	for _, bad := range []string{"0", "-1", "1001", "99999999999999999999", "ten", "on", "5\x00", "1e3", "0x10", "\t"} {
		_, err := config.Load(env(map[string]string{"CACHE_WARM": bad}))
		if err == nil {
			t.Errorf("CACHE_WARM=%q accepted", bad)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "CACHE_WARM: ") || strings.Contains(msg, "\n") {
			t.Errorf("CACHE_WARM=%q: error %q, want one line naming CACHE_WARM", bad, msg)
		}
	}
}
