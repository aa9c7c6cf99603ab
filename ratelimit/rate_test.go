package ratelimit_test

import (
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/ratelimit"
)

func TestParseRate(t *testing.T) {
	good := []struct {
		in   string
		want ratelimit.Rate
	}{
		{"600/1m", ratelimit.Rate{Limit: 600, Window: time.Minute}},
		{"5/1m", ratelimit.Rate{Limit: 5, Window: time.Minute}},
		{" 10/10s ", ratelimit.Rate{Limit: 10, Window: 10 * time.Second}},
		{"1000000000/1m", ratelimit.Rate{Limit: 1_000_000_000, Window: time.Minute}},
		{"off", ratelimit.Rate{}},
		{"OFF", ratelimit.Rate{}},
	}
	for _, tt := range good {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ratelimit.ParseRate(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseRate(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
	bad := []string{"", "600", "/1m", "600/", "0/1m", "-1/1m", "1.5/1m", "600/1", "600/0s", "600/-1m",
		"600/500ms", "600/8760h", "600/1m/1m", "1000000001/1m", "١٠/1m", "600/1m\x00", "600/1.0000001s", "on"}
	for _, in := range bad {
		t.Run("bad "+in, func(t *testing.T) {
			if got, err := ratelimit.ParseRate(in); err == nil {
				t.Fatalf("ParseRate(%q) = %+v, nil; want an error", in, got)
			}
		})
	}
}
