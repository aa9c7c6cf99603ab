package httpapi

import (
	"testing"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// wireToolkit fills the toolkit fields of d as cmd/theaterd does.
func wireToolkit(tb testing.TB, d *Deps, rdb *redisx.Client) {
	tb.Helper()
}

func redistestKeys(tb testing.TB, in *instance) []string {
	tb.Helper()
	return redistest.Keys(tb, in.rdb)
}
