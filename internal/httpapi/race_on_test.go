//go:build race

package httpapi

// burstRSSBound is TestLoginBurstMemoryIsBounded's bound on peak RSS growth
// (KiB). The race detector keeps shadow memory for every allocation, so
// the same 76 MiB of argon2id costs several times its size in RSS (+453 MiB
// measured); unbounded, the burst's heap alone would be 3.8 GiB.
const burstRSSBound = 1536 << 10

// hitAllocs are TestHitAllocations' bounds under the race detector, which
// makes sync.Pool drop items at random (so more allocations): measured
// 2026-12-04 (54, 68, 88) plus two for that randomness.
var hitAllocs = map[string]int{"script": 56, "list": 70, "me": 90}
