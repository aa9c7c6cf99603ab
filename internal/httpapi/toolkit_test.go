package httpapi

import (
	"testing"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/redisx"
)

// wireToolkit sets generous limits, so that every request in the tests
// goes through both limiters without being refused; tests of the limits
// set their own.
func wireToolkit(tb testing.TB, d *Deps, _ *redisx.Client) {
	tb.Helper()
	d.APIRate = ratelimit.Rate{Limit: 1_000_000, Window: 60e9}
	d.LoginRate = ratelimit.Rate{Limit: 1000, Window: 60e9}
}

func redistestKeys(tb testing.TB, in *instance) []string {
	tb.Helper()
	return redistest.Keys(tb, in.rdb)
}
