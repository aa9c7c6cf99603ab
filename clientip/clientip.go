// Package clientip answers "who is the client?" for every part of the
// service that needs it — the rate limiters, the session records and the
// request logs — so they all agree. It believes X-Forwarded-For only from
// the proxies the operator trusts (TRUSTED_PROXIES), and Parse reads that
// list in the one place it is read.
//
//	proxies, err := clientip.Parse(os.Getenv("TRUSTED_PROXIES")) // "10.0.0.0/8, 192.0.2.7"
//	if err != nil { ... }
//	res := clientip.Resolver{Trusted: proxies}
//	addr := res.ClientIP(r) // 198.51.100.9, folded and zoneless
//
// Addresses are folded before anything compares them: an IPv4-mapped IPv6
// address (::ffff:10.1.2.3) is its IPv4 address, zones are dropped. Parse
// folds IPv4-mapped CIDRs the same way (::ffff:10.0.0.0/104 is 10.0.0.0/8),
// so a proxy written either way matches.
package clientip

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// MaxForwardedHops bounds how many X-Forwarded-For entries ClientIP reads,
// so a megabyte of forged entries costs no more than a short header.
const MaxForwardedHops = 32

// MaxEntries bounds how many entries Parse accepts: a trusted-proxy list is
// a handful of networks, and each one costs every request a comparison.
const MaxEntries = 1024

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("clientip: invalid trusted proxies")

// Parse reads a comma-separated list of CIDRs or bare addresses
// ("10.0.0.0/8, 192.0.2.7, fd00::/8"), as TRUSTED_PROXIES holds it. Spaces
// and tabs around entries are ignored (other white space is an error); an empty string is no proxies. A bare address
// is a /32 or /128; every prefix comes back masked (10.1.2.3/8 is
// 10.0.0.0/8) and IPv4-mapped ones folded to IPv4 (::ffff:10.0.0.0/104 is
// 10.0.0.0/8).
//
// Errors wrap ErrInvalid and say which entry is wrong and why, without
// repeating it: an empty entry (a stray comma), a host name, a zone
// (fe80::1%eth0: a proxy is matched on its address alone), a malformed
// CIDR, an IPv4-mapped CIDR shorter than /96 (it would mix IPv4 and IPv6
// space), or more than MaxEntries entries.
func Parse(s string) ([]netip.Prefix, error) {
	if strings.Trim(s, " \t") == "" {
		return nil, nil
	}
	n := strings.Count(s, ",") + 1
	if n > MaxEntries {
		return nil, fmt.Errorf("%w: %d entries; at most %d", ErrInvalid, n, MaxEntries)
	}
	out := make([]netip.Prefix, 0, n)
	i := 0
	for part := range strings.SplitSeq(s, ",") {
		i++
		p, problem := parseEntry(strings.Trim(part, " \t"))
		if problem != "" {
			return nil, fmt.Errorf("%w: entry %d of %d %s", ErrInvalid, i, n, problem)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseEntry reads one CIDR or address, or says what is wrong with it.
func parseEntry(e string) (netip.Prefix, string) {
	if e == "" {
		return netip.Prefix{}, "is empty; want CIDRs or IPs separated by commas"
	}
	if strings.Contains(e, "%") {
		return netip.Prefix{}, "has a zone (%...); want an IP address or CIDR without one"
	}
	if !strings.Contains(e, "/") {
		a, err := netip.ParseAddr(e)
		if err != nil {
			return netip.Prefix{}, "is not an IP address or CIDR"
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), ""
	}
	p, err := netip.ParsePrefix(e)
	if err != nil {
		return netip.Prefix{}, "is not a valid CIDR such as 10.0.0.0/8 or fd00::/8"
	}
	if p.Addr().Is4In6() {
		// Client addresses are folded to IPv4, so the CIDR must be too, or
		// it would never contain one.
		if p.Bits() < 96 {
			return netip.Prefix{}, "is an IPv4-mapped CIDR shorter than /96; write the IPv4 CIDR instead"
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), ""
}

// Resolver finds the address of the client that sent a request. It
// believes X-Forwarded-For only from the proxies in Trusted: it starts from
// the connection's peer (RemoteAddr) and, while the current hop is trusted,
// steps one entry left in X-Forwarded-For, read right to left. The first
// untrusted hop is the client. So an entry a client forges on the left can
// never be chosen, and a request that reaches the server directly has its
// X-Forwarded-For ignored.
//
// The zero Resolver trusts no proxy and returns the peer's address.
type Resolver struct {
	// Trusted lists the proxies (load balancers, ingress) whose
	// X-Forwarded-For is believed, as Parse returns them. A prefix given
	// by hand should be folded as Parse folds it: an IPv4-mapped prefix
	// never contains a (folded) client address.
	Trusted []netip.Prefix
}

// ClientIP returns the client's address, folded (IPv4-mapped IPv6 to IPv4)
// and without a zone. It returns the zero Addr when even the peer's
// address is unknown (a Unix socket, a hand-made request).
func (res Resolver) ClientIP(r *http.Request) netip.Addr {
	cur := Peer(r)
	if !cur.IsValid() || !res.Trusts(cur) {
		return cur
	}
	values := r.Header.Values("X-Forwarded-For")
	hops := 0
	// Right to left: the last header line is the one our proxy appended.
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			if hops++; hops > MaxForwardedHops {
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
			if !res.Trusts(a) {
				return a
			}
			cur = a
		}
	}
	return cur
}

// FromTrustedProxy reports whether the request's peer is a trusted proxy,
// so that its other forwarded headers (X-Forwarded-Proto) may be believed.
func (res Resolver) FromTrustedProxy(r *http.Request) bool {
	peer := Peer(r)
	return peer.IsValid() && res.Trusts(peer)
}

// Trusts reports whether a (folded, as ClientIP returns addresses) is in
// one of the trusted networks.
func (res Resolver) Trusts(a netip.Addr) bool {
	for _, p := range res.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Peer returns the address of the connection's peer (RemoteAddr), folded
// and zoneless, or the zero Addr when it is unknown.
func Peer(r *http.Request) netip.Addr { return parseHostPort(r.RemoteAddr) }

// parseHostPort reads "1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80" or
// "[fe80::1%eth0]:80" and returns the folded, zoneless address, or the
// zero Addr.
func parseHostPort(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return fold(a)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return fold(ap.Addr())
	}
	// ParseAddrPort refuses zones in brackets; SplitHostPort does not, but
	// it takes any port text, so the port is checked here.
	if host, port, err := net.SplitHostPort(s); err == nil && validPort(port) {
		if a, err := netip.ParseAddr(host); err == nil {
			return fold(a)
		}
	}
	return netip.Addr{}
}

// validPort reports whether p is a port number: 1 to 5 digits, at most
// 65535.
func validPort(p string) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

func fold(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }
