package ratelimit_test

import (
	"net/netip"
	"testing"

	"github.com/theaterscriptpro/tsp/ratelimit"
)

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
