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
		p := netip.PrefixFrom(a, 64).Masked()
		return "ip:" + p.String()
	}
	return "ip:" + a.String()
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
	byIP := KeyByIP(res)
	return func(r *http.Request) string {
		if id, ok := user(r); ok && id != "" {
			return "user:" + id
		}
		return byIP(r)
	}
}
