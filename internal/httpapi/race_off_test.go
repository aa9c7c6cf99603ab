//go:build !race

package httpapi

// burstRSSBound is TestLoginBurstMemoryIsBounded's bound on peak RSS growth
// (KiB): measured +153–208 MiB; unbounded, the burst's heap alone would be
// 3.8 GiB.
const burstRSSBound = 400 << 10

// hitAllocs are TestHitAllocations' bounds: allocations per cached hit,
// measured 2026-12-04 (47, 61, 75–76) plus one (see the test).
var hitAllocs = map[string]int{"script": 48, "list": 62, "me": 77}
