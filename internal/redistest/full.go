package redistest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/redisx"
)

// FillUp makes the Redis c talks to full, as one that filled up by itself
// looks: it writes a MiB under c's prefix (1h TTL), then sets maxmemory
// half a MiB below what Redis uses, so that under maxmemory-policy
// noeviction every write is refused with OOM however much a TTL frees
// meanwhile. It fails the test unless a tiny write then fails with
// redisx.ErrOutOfMemory. Use it on a server of the test's own
// (StartServer(tb, "--maxmemory-policy", "noeviction")): it changes the
// server's configuration. It returns the maxmemory it set.
func FillUp(tb testing.TB, c *redisx.Client) int64 {
	tb.Helper()
	ctx := context.Background()
	val := strings.Repeat("x", 64<<10)
	for i := range 16 {
		if err := c.Set(ctx, c.Keys().Join("fill", strconv.Itoa(i)), []byte(val), time.Hour); err != nil {
			tb.Fatalf("redistest: FillUp: %v", err)
		}
	}
	used := InfoInt(tb, c, "memory", "used_memory")
	limit := used - 512<<10
	if err := c.Do(ctx, c.B().ConfigSet().ParameterValue().ParameterValue("maxmemory", strconv.FormatInt(limit, 10)).Build()).Error(); err != nil {
		tb.Fatalf("redistest: FillUp: CONFIG SET maxmemory: %v", err)
	}
	err := c.Set(ctx, c.Keys().Join("fill", "tiny"), []byte("x"), time.Hour)
	if !errors.Is(err, redisx.ErrOutOfMemory) {
		tb.Fatalf("redistest: FillUp: a tiny write to the full Redis: %v; want redisx.ErrOutOfMemory (is maxmemory-policy noeviction?)", err)
	}
	return limit
}

// InfoInt reads one integer field of an INFO section from the Redis c
// talks to (the first server a keyless command reaches).
func InfoInt(tb testing.TB, c *redisx.Client, section, field string) int64 {
	tb.Helper()
	info, err := c.Do(context.Background(), c.B().Info().Section(section).Build()).ToString()
	if err != nil {
		tb.Fatalf("redistest: INFO %s: %v", section, err)
	}
	v, ok := infoFields(strings.TrimPrefix(info, "txt:"))[field]
	if !ok {
		tb.Fatalf("redistest: INFO %s has no %s", section, field)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		tb.Fatalf("redistest: INFO %s %s: %v", section, field, err)
	}
	return n
}
