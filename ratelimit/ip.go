package ratelimit

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how many X-Forwarded-For entries ClientIP reads,
// so a megabyte of forged entries costs no more than a short header.
const maxForwardedHops = 32

// IPResolver finds the address of the client that sent a request. It
// believes X-Forwarded-For only from the proxies in Trusted: it starts from
// the connection's peer (RemoteAddr) and, while the current hop is trusted,
// steps one entry left in X-Forwarded-For, read right to left. The first
// untrusted hop is the client. So an entry a client forges on the left can
// never be chosen, and a request that reaches the server directly has its
// X-Forwarded-For ignored.
//
// The zero IPResolver trusts no proxy and returns the peer's address. The
// API server also uses it for session records and logs, so every part of
// the service agrees on who the client is.
type IPResolver struct {
	// Trusted lists the proxies (load balancers, ingress) whose
	// X-Forwarded-For is believed; TRUSTED_PROXIES in API.md.
	Trusted []netip.Prefix
}

// ParseTrustedProxies reads a comma-separated list of CIDRs or bare
// addresses ("10.0.0.0/8, 192.0.2.7, fd00::/8"), as TRUSTED_PROXIES holds
// it. An empty string is no proxies.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(part, "/") {
			p, err = netip.ParsePrefix(part)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(part)
			if err == nil && a.Zone() != "" {
				return nil, &proxyError{part}
			}
			if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || p.Addr().Zone() != "" {
			return nil, &proxyError{part}
		}
		// A mapped IPv4 CIDR (::ffff:10.0.0.0/104) is folded like addresses are.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

type proxyError struct{ part string }

func (e *proxyError) Error() string {
	return "ratelimit: trusted proxy " + quoteShort(e.part) + " is not a CIDR or an IP address"
}

// quoteShort quotes s for an error message, cut so a hostile value cannot
// flood a log line.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + strings.ToValidUTF8(strings.ReplaceAll(s, `"`, `\"`), "?") + `"`
}

// ClientIP returns the client's address: IPv4-mapped IPv6 addresses are
// folded to IPv4 and zones dropped. It returns the zero Addr when even the
// peer's address is unknown (a Unix socket, a hand-made request).
func (res IPResolver) ClientIP(r *http.Request) netip.Addr {
	cur := parseHostPort(r.RemoteAddr)
	if !cur.IsValid() || !res.trusted(cur) {
		return cur
	}
	values := r.Header.Values("X-Forwarded-For")
	hops := 0
	// Right to left: the last header line is the one our proxy appended.
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			if hops++; hops > maxForwardedHops {
				return cur
			}
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue // "a, , b" and a trailing comma carry no hop
			}
			a := parseHostPort(entry)
			if !a.IsValid() {
				// A trusted proxy wrote something we cannot read: what lies
				// to its left cannot be trusted, so the proxy is the client.
				return cur
			}
			if !res.trusted(a) {
				return a
			}
			cur = a
		}
	}
	return cur
}

func (res IPResolver) trusted(a netip.Addr) bool {
	for _, p := range res.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHostPort reads "1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80" or
// "[fe80::1%eth0]:80" and returns the unmapped, zoneless address, or the
// zero Addr.
func parseHostPort(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return fold(a)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return fold(ap.Addr())
	}
	// ParseAddrPort refuses zones in brackets; SplitHostPort does not.
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return fold(a)
		}
	}
	return netip.Addr{}
}

func fold(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

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

// Key returns the limiter key of the request's client address (see
// AddrKey). It is the default Config.Key.
func (res IPResolver) Key(r *http.Request) string { return AddrKey(res.ClientIP(r)) }

// KeyByUser returns a key function that limits signed-in users by their id
// ("user:42") and everyone else by client address. user reports the id of
// the signed-in user, so this package needs no session package.
func KeyByUser(user func(r *http.Request) (userID string, ok bool), res IPResolver) func(*http.Request) string {
	return func(r *http.Request) string {
		if id, ok := user(r); ok && id != "" {
			return "user:" + id
		}
		return res.Key(r)
	}
}
