package clientip_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/clientip"
)

func mustParse(tb testing.TB, s string) []netip.Prefix {
	tb.Helper()
	p, err := clientip.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	res := clientip.Resolver{Trusted: mustParse(t, "10.0.0.0/8, fd00::/8, 192.0.2.7")}
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
		{"zoned hop with a junk port: garbage, stop at the proxy", "10.0.0.5:80", []string{"[fe80::1%eth0]:0\x13m"}, "10.0.0.5"},
		{"zoned hop with a port over 65535: garbage", "10.0.0.5:80", []string{"[fe80::1%eth0]:65536"}, "10.0.0.5"},
		{"zoned hop with a port", "10.0.0.5:80", []string{"[fe80::1%eth0]:65535"}, "fe80::1"},
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
	res := clientip.Resolver{Trusted: mustParse(t, "10.0.0.0/8")}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Forwarded-For", strings.Repeat("10.9.9.9, ", 100_000)+"10.8.8.8")
	if got := res.ClientIP(r); !got.IsValid() || !netip.MustParsePrefix("10.0.0.0/8").Contains(got) {
		t.Fatalf("ClientIP = %v; want one of the trusted hops", got)
	}
}

// TestMappedCIDRTrustsFoldedClient is issue 13's case: a proxy written as
// an IPv4-mapped CIDR must match the folded IPv4 peer.
func TestMappedCIDRTrustsFoldedClient(t *testing.T) {
	t.Parallel()
	res := clientip.Resolver{Trusted: mustParse(t, "::ffff:10.0.0.0/104")}
	for _, remote := range []string{"10.1.2.3:80", "[::ffff:10.1.2.3]:80"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "198.51.100.9")
		if !res.FromTrustedProxy(r) {
			t.Errorf("peer %s: FromTrustedProxy = false; want true", remote)
		}
		if got := res.ClientIP(r).String(); got != "198.51.100.9" {
			t.Errorf("peer %s: ClientIP = %s; want 198.51.100.9 (the proxy's client)", remote, got)
		}
	}
	if !res.Trusts(netip.MustParseAddr("10.1.2.3")) || res.Trusts(netip.MustParseAddr("11.1.2.3")) {
		t.Errorf("Trusts: want 10.1.2.3 in and 11.1.2.3 out of %v", res.Trusted)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{" 10.0.0.0/8,192.0.2.7 , fd00::/8", "10.0.0.0/8 192.0.2.7/32 fd00::/8"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::ffff:10.1.2.3", "10.1.2.3/32"},
		{"::ffff:10.1.2.3/128", "10.1.2.3/32"},
		{"::ffff:0.0.0.0/96", "0.0.0.0/0"},
		{"::1", "::1/128"},
		{"0.0.0.0/0,::/0", "0.0.0.0/0 ::/0"},
	} {
		got, err := clientip.Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if strings.Join(s, " ") != tt.want {
			t.Errorf("Parse(%q) = %v; want %s", tt.in, s, tt.want)
		}
	}
}

func TestParseRejectsHostileInput(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, in, want string }{
		{"bad CIDR length", "10.0.0.0/33", "entry 1 of 1 is not a valid CIDR"},
		{"negative length", "10.0.0.0/-1", "not a valid CIDR"},
		{"double slash", "10.0.0.1/8/8", "not a valid CIDR"},
		{"host name", "proxy.example", "entry 1 of 1 is not an IP address or CIDR"},
		{"short IPv4", "1.2.3", "not an IP address"},
		{"zone", "fe80::1%eth0", "has a zone"},
		{"zone in a CIDR", "fe80::1%eth0/64", "has a zone"},
		{"trailing comma", "10.0.0.1,", "entry 2 of 2 is empty"},
		{"empty middle", "10.0.0.1,,10.0.0.2", "entry 2 of 3 is empty"},
		{"mapped and short", "::ffff:10.0.0.0/90", "shorter than /96"},
		{"control byte", "10.0.0.1\n,10.0.0.2", "entry 1 of 2"},
		{"NUL", "10.0.0.1\x00", "not an IP address"},
		{"long garbage", strings.Repeat("x", 5000), "not an IP address"},
		{"too many", strings.Repeat("10.0.0.1,", clientip.MaxEntries) + "10.0.0.1", "at most 1024"},
		{"non-ASCII digits", "١٠.0.0.1", "not an IP address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := clientip.Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%.40q) = %v; want an error", tt.in, p)
			}
			if !errors.Is(err, clientip.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q; want one wrapping ErrInvalid and saying %q", err, tt.want)
			}
			if len(err.Error()) > 200 || strings.ContainsAny(err.Error(), "\n\x00") {
				t.Fatalf("error %.80q: want one short line that does not echo the value", err)
			}
		})
	}
}

// FuzzParse: whatever the input, Parse does not panic, and what it returns
// is folded, masked and zoneless, and reads back the same from its String.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8, 192.0.2.7", "::ffff:10.0.0.0/104", "::ffff:1.2.3.4", "fe80::1%eth0", "10.0.0.0/33", ",", "", " , ", "::/0", "1.2.3.4/0", "::ffff:0:0/95", "2001:db8::/129", "10.0.0.1/08"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := clientip.Parse(s)
		if err != nil {
			if got != nil || !errors.Is(err, clientip.ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, %v", s, got, err)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		var back []string
		for _, p := range got {
			if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
				t.Fatalf("Parse(%q) gave %v: not valid, masked, zoneless and folded", s, p)
			}
			back = append(back, p.String())
		}
		again, err := clientip.Parse(strings.Join(back, ","))
		if err != nil || len(again) != len(got) {
			t.Fatalf("Parse(%q) = %v, but Parse of its String = %v, %v", s, got, again, err)
		}
		for i := range got {
			if again[i] != got[i] {
				t.Fatalf("round trip of %v gave %v", got, again)
			}
		}
	})
}

func FuzzClientIP(f *testing.F) {
	f.Add("198.51.100.1:5000", "1.2.3.4")
	f.Add("10.0.0.5:80", "6.6.6.6, 198.51.100.9")
	f.Add("10.0.0.5:80", "198.51.100.9, 10.1.1.1, 10.2.2.2")
	f.Add("[::ffff:10.0.0.5]:80", "[2001:db8::1]:4711, ::ffff:1.2.3.4")
	f.Add("[fe80::1%eth0]:80", "")
	f.Add("@", "1.2.3.4")
	f.Add("10.0.0.5:80", ",,, ,")
	f.Add("10.0.0.5:80", "fe80::1%25eth0, [::1%lo]:1")
	res := clientip.Resolver{Trusted: mustParse(f, "10.0.0.0/8, fd00::/8")}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		r.Header.Set("X-Forwarded-For", xff)
		got := res.ClientIP(r)
		peer := clientip.Peer(r)
		if got.IsValid() && (got.Is4In6() || got.Zone() != "") {
			t.Fatalf("ClientIP = %v: not folded", got)
		}
		if !res.FromTrustedProxy(r) {
			// An untrusted (or unknown) peer: its X-Forwarded-For is never read.
			if got != peer {
				t.Fatalf("untrusted peer %q: ClientIP = %v; want the peer %v", remote, got, peer)
			}
			return
		}
		if !got.IsValid() {
			t.Fatalf("trusted peer %v gave no address", peer)
		}
		// The answer is the peer or one of the hops in the header.
		if got != peer && !containsAddr(xff, got) {
			t.Fatalf("ClientIP = %v: neither the peer %v nor a hop of %q", got, peer, xff)
		}
	})
}

func containsAddr(xff string, a netip.Addr) bool {
	for _, part := range strings.Split(xff, ",") {
		part = strings.TrimSpace(part)
		if b, err := netip.ParseAddr(part); err == nil && b.Unmap().WithZone("") == a {
			return true
		}
		if ap, err := netip.ParseAddrPort(part); err == nil && ap.Addr().Unmap().WithZone("") == a {
			return true
		}
		if strings.Contains(part, a.String()) {
			return true
		}
	}
	return false
}
