package ratelimit_test

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/ratelimit"
)

func mustPrefixes(tb testing.TB, s string) []netip.Prefix {
	tb.Helper()
	p, err := ratelimit.ParseTrustedProxies(s)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	res := ratelimit.IPResolver{Trusted: mustPrefixes(t, "10.0.0.0/8, fd00::/8, 192.0.2.7")}
	for _, tt := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct", "198.51.100.1:5000", nil, "198.51.100.1"},
		{"forged XFF from an untrusted peer is ignored", "198.51.100.1:5000", []string{"1.2.3.4"}, "198.51.100.1"},
		{"trusted proxy, one hop", "10.0.0.5:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"client-forged left entry is not believed", "10.0.0.5:80", []string{"6.6.6.6, 198.51.100.9"}, "198.51.100.9"},
		{"chain of trusted proxies", "10.0.0.5:80", []string{"198.51.100.9, 10.1.1.1, 192.0.2.7"}, "198.51.100.9"},
		{"several header lines, last is nearest", "10.0.0.5:80", []string{"6.6.6.6", "198.51.100.9, 10.2.2.2"}, "198.51.100.9"},
		{"all trusted: leftmost", "10.0.0.5:80", []string{"10.3.3.3, 10.4.4.4"}, "10.3.3.3"},
		{"garbage hop: stop at the proxy", "10.0.0.5:80", []string{"6.6.6.6, not-an-ip"}, "10.0.0.5"},
		{"empty entries skipped", "10.0.0.5:80", []string{"198.51.100.9, , "}, "198.51.100.9"},
		{"hop with port", "10.0.0.5:80", []string{"198.51.100.9:4711"}, "198.51.100.9"},
		{"IPv6 hop with port", "10.0.0.5:80", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"IPv4-mapped peer folded", "[::ffff:198.51.100.1]:5000", nil, "198.51.100.1"},
		{"IPv4-mapped trusted proxy folded", "[::ffff:10.0.0.5]:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"IPv4-mapped hop folded", "10.0.0.5:80", []string{"::ffff:198.51.100.9"}, "198.51.100.9"},
		{"zone dropped", "[fe80::1%eth0]:80", nil, "fe80::1"},
		{"IPv6 trusted proxy", "[fd00::1]:80", []string{"2001:db8::7"}, "2001:db8::7"},
		{"bare RemoteAddr", "198.51.100.1", nil, "198.51.100.1"},
		{"unix socket", "@", []string{"1.2.3.4"}, "invalid IP"},
		{"empty", "", nil, "invalid IP"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := res.ClientIP(r).String(); got != tt.want {
				t.Fatalf("ClientIP(remote %q, XFF %q) = %s; want %s", tt.remote, tt.xff, got, tt.want)
			}
		})
	}
}

func TestClientIPLongForgedChain(t *testing.T) {
	t.Parallel()
	// Every hop trusted and a megabyte of them: the walk stops after a
	// bounded number of hops instead of reading it all.
	res := ratelimit.IPResolver{Trusted: mustPrefixes(t, "10.0.0.0/8")}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Forwarded-For", strings.Repeat("10.9.9.9, ", 100_000)+"10.8.8.8")
	if got := res.ClientIP(r); !got.IsValid() || !netip.MustParsePrefix("10.0.0.0/8").Contains(got) {
		t.Fatalf("ClientIP = %v; want one of the trusted hops", got)
	}
}

func TestAddrKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"192.0.2.1", "ip:192.0.2.1"},
		{"2001:db8:1:2::1", "ip:2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "ip:2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "ip:2001:db8:1:3::/64"},
	} {
		if got := ratelimit.AddrKey(netip.MustParseAddr(tt.in)); got != tt.want {
			t.Errorf("AddrKey(%s) = %s; want %s", tt.in, got, tt.want)
		}
	}
	if got := ratelimit.AddrKey(netip.Addr{}); got != "ip:unknown" {
		t.Errorf("AddrKey(zero) = %s; want ip:unknown", got)
	}
}

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	got, err := ratelimit.ParseTrustedProxies(" 10.0.0.0/8,192.0.2.7 , fd00::/8,, ::ffff:10.0.0.0/104,10.1.2.3/8")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "fd00::/8", "10.0.0.0/8", "10.0.0.0/8"}
	if len(got) != len(want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("got %v; want %v", got, want)
		}
	}
	if p, err := ratelimit.ParseTrustedProxies(""); err != nil || len(p) != 0 {
		t.Fatalf("empty: %v, %v; want none", p, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1/8/8", "fe80::1%eth0", "1.2.3", "10.0.0.0/-1", strings.Repeat("x", 500)} {
		if p, err := ratelimit.ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%.40q) = %v; want an error", bad, p)
		} else if len(err.Error()) > 200 {
			t.Errorf("error for a long value is %d bytes; want it cut", len(err.Error()))
		}
	}
}
