package ratelimit

import (
	"net/http"
	"net/netip"

	"github.com/theaterscriptpro/tsp/clientip"
)

// AddrKey returns the limiter key of an address: "ip:192.0.2.1" for IPv4,
// and for IPv6 the /64 it belongs to, "ip:2001:db8:1:2::/64", because one
// subscriber usually holds a whole /64 and could otherwise rotate through
// 2^64 buckets. The zero Addr gives "ip:unknown": such clients share one
// bucket rather than escape limiting.
func AddrKey(a netip.Addr) string {
	if !a.IsValid() {
		return "ip:unknown"
	}
	if a.Is6() {
		// netip.Prefix.String and + would be two allocations; this runs on
		// every limited request.
		var b [64]byte
		return string(netip.PrefixFrom(a, 64).Masked().AppendTo(append(b[:0], "ip:"...)))
	}
	var b [24]byte
	return string(a.AppendTo(append(b[:0], "ip:"...)))
}

// KeyByIP returns a key function that limits by the client address res
// finds (see AddrKey). KeyByIP(clientip.Resolver{}), the peer's address, is
// the default Config.Key.
func KeyByIP(res clientip.Resolver) func(*http.Request) string {
	return func(r *http.Request) string { return AddrKey(res.ClientIP(r)) }
}

// KeyByUser returns a key function that limits signed-in users by their id
// ("user:42") and everyone else by client address. user reports the id of
// the signed-in user, so this package needs no session package.
func KeyByUser(user func(r *http.Request) (userID string, ok bool), res clientip.Resolver) func(*http.Request) string {
	return KeyByUserOrAddr(user, res.ClientIP)
}

// KeyByUserOrAddr is KeyByUser for a server that has already resolved the
// client's address (for its access log, say): addr returns it, and is
// asked only for requests without a user.
func KeyByUserOrAddr(user func(r *http.Request) (userID string, ok bool), addr func(*http.Request) netip.Addr) func(*http.Request) string {
	return func(r *http.Request) string {
		if id, ok := user(r); ok && id != "" {
			return "user:" + id
		}
		return AddrKey(addr(r))
	}
}
