package httpapi

import (
	"testing"

	"github.com/theaterscriptpro/tsp/redisx"
)

// TestDomainKeys: the service's keys keep the original guide's names, under
// the client's prefix, with the entity's id escaped as the hash tag.
func TestDomainKeys(t *testing.T) {
	t.Parallel()
	b, err := redisx.NewKeys("tsp:")
	if err != nil {
		t.Fatal(err)
	}
	k := domainKeys{b}
	for _, tt := range []struct{ name, got, want string }{
		{"User", k.User("42"), "tsp:user:{42}"},
		{"Script", k.Script("abc-DEF_1.2"), "tsp:script:{abc-DEF_1.2}"},
		{"LicensesByUser", k.LicensesByUser("7"), "tsp:licenses:user:{7}"},
		{"ScriptViews", k.ScriptViews("9"), "tsp:views:script:{9}"},
		{"escaped id", k.Script("a*b {c}"), "tsp:script:{a%2Ab%20%7Bc%7D}"},
		{"toolkit key through the same builder", k.Session("tok"), "tsp:session:{tok}"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}
