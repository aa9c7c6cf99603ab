//go:build !race

package httpapi

// burstRSSBound is TestLoginBurstMemoryIsBounded's bound on peak RSS growth
// (KiB): measured +153–208 MiB; unbounded, the burst's heap alone would be
// 3.8 GiB.
const burstRSSBound = 400 << 10
