package redisx

import (
	"reflect"
	"strings"
	"testing"
)

// realInfo is what Redis 7.0 answers to INFO memory, stats and replication,
// cut down to a few fields around the ones the watcher reads.
const realInfo = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:2097152\r\nmaxmemory_human:2.00M\r\nmaxmemory_policy:allkeys-lru\r\n\r\n" +
	"# Stats\r\ntotal_connections_received:3\r\nevicted_keys:17\r\n\r\n" +
	"# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"

// loadInfo is what INFO stats and clients add for the load figures.
const loadInfo = "# Stats\r\nexpired_keys:5\r\ninstantaneous_ops_per_sec:42\r\n\r\n# Clients\r\nconnected_clients:3\r\n"

// TestMemoryFromInfo: well-formed replies in either line ending give the
// figures; hostile and malformed ones give an error, never a zero taken
// for a reading, and never a panic.
func TestMemoryFromInfo(t *testing.T) {
	t.Parallel()
	want := nodeMemory{used: 1 << 20, max: 2 << 20, evicted: 17, policy: "allkeys-lru"}
	replace := func(old, new string) string { return strings.Replace(realInfo, old, new, 1) }
	for _, tc := range []struct {
		name    string
		in      string
		want    nodeMemory
		wantErr string // a substring of the error; "" for none
	}{
		{"CRLF", realInfo, want, ""},
		{"LF", strings.ReplaceAll(realInfo, "\r\n", "\n"), want, ""},
		{"RESP3 verbatim prefix", "txt:" + realInfo, want, ""},
		{"no trailing newline", strings.TrimRight(realInfo, "\r\n"), want, ""},
		{"replica", replace("role:master", "role:slave"), nodeMemory{used: 1 << 20, max: 2 << 20, evicted: 17, policy: "allkeys-lru", replica: true}, ""},
		{"no role: a master", replace("role:master\r\n", ""), want, ""},
		{"no limit", replace("maxmemory:2097152", "maxmemory:0"), nodeMemory{used: 1 << 20, evicted: 17, policy: "allkeys-lru"}, ""},
		{"spaces around a value", replace("used_memory:1048576", "used_memory: 1048576 "), want, ""},
		{"largest int64", replace("evicted_keys:17", "evicted_keys:9223372036854775807"), nodeMemory{used: 1 << 20, max: 2 << 20, evicted: 1<<63 - 1, policy: "allkeys-lru"}, ""},
		{"repeated field: the last wins", realInfo + "evicted_keys:18\r\n", nodeMemory{used: 1 << 20, max: 2 << 20, evicted: 18, policy: "allkeys-lru"}, ""},
		{"lines without a colon", "garbage\r\n:\r\n" + realInfo + "more garbage", want, ""},
		{"load figures", realInfo + loadInfo, nodeMemory{used: 1 << 20, max: 2 << 20, evicted: 17, policy: "allkeys-lru", traffic: &nodeTraffic{expired: 5, opsPerSec: 42, clients: 3}}, ""},
		{"load figures in part: not shown", realInfo + "expired_keys:5\r\n", want, ""},
		{"load figure unreadable", realInfo + strings.Replace(loadInfo, "ops_per_sec:42", "ops_per_sec:lots", 1), nodeMemory{}, "instantaneous_ops_per_sec"},
		{"load figure negative", realInfo + strings.Replace(loadInfo, "connected_clients:3", "connected_clients:-3", 1), nodeMemory{}, "connected_clients"},

		{"empty reply", "", nodeMemory{}, "no used_memory"},
		{"only headers", "# Memory\r\n# Stats\r\n", nodeMemory{}, "no maxmemory_policy"},
		{"no used_memory", replace("used_memory:1048576\r\n", ""), nodeMemory{}, "no used_memory"},
		{"no maxmemory", replace("maxmemory:2097152\r\n", ""), nodeMemory{}, "no maxmemory"},
		{"no evicted_keys", replace("evicted_keys:17\r\n", ""), nodeMemory{}, "no evicted_keys"},
		{"no policy", replace("maxmemory_policy:allkeys-lru\r\n", ""), nodeMemory{}, "no maxmemory_policy"},
		{"empty policy", replace("maxmemory_policy:allkeys-lru", "maxmemory_policy:"), nodeMemory{}, "no maxmemory_policy"},
		{"huge policy", replace("allkeys-lru", strings.Repeat("x", 1<<16)), nodeMemory{}, "is not a policy"},
		{"not a number", replace("used_memory:1048576", "used_memory:lots"), nodeMemory{}, "used_memory"},
		{"float", replace("used_memory:1048576", "used_memory:1.5"), nodeMemory{}, "used_memory"},
		{"negative", replace("evicted_keys:17", "evicted_keys:-1"), nodeMemory{}, "evicted_keys"},
		{"beyond int64", replace("maxmemory:2097152", "maxmemory:99999999999999999999999999"), nodeMemory{}, "maxmemory"},
		{"empty value", replace("used_memory:1048576", "used_memory:"), nodeMemory{}, "used_memory"},
		{"huge value", replace("used_memory:1048576", "used_memory:"+strings.Repeat("9", 1<<16)), nodeMemory{}, "used_memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := memoryFromInfo(parseInfo(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v; want one naming %q", err, tc.wantErr)
				}
				if len(err.Error()) > 1024 {
					t.Errorf("error of %d bytes: a hostile value must be cut short in it", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v; want none", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v; want %+v", got, tc.want)
			}
		})
	}
}

// TestEvictedSince: growth is the difference; a smaller reading is a
// restart, whose count is all new.
func TestEvictedSince(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ last, now, want int64 }{
		{0, 0, 0}, {10, 10, 0}, {10, 25, 15}, {100, 7, 7}, {100, 0, 0},
	} {
		if got := evictedSince(tc.last, tc.now); got != tc.want {
			t.Errorf("evictedSince(%d, %d) = %d; want %d", tc.last, tc.now, got, tc.want)
		}
	}
}

// TestPolicyMayEvictSessions follows docs/production.md: noeviction and
// volatile-ttl keep sessions, every other policy (and one Redis may add)
// does not.
func TestPolicyMayEvictSessions(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]bool{
		"noeviction": false, "volatile-ttl": false,
		"allkeys-lru": true, "allkeys-lfu": true, "allkeys-random": true,
		"volatile-lru": true, "volatile-lfu": true, "volatile-random": true,
		"some-future-policy": true,
	} {
		if got := PolicyMayEvictSessions(p); got != want {
			t.Errorf("PolicyMayEvictSessions(%q) = %v; want %v", p, got, want)
		}
	}
}

// FuzzParseInfo: no reply makes the parser panic, and a reading it
// accepts is one the metrics can show: non-negative figures, a short
// policy, fields without a colon or a line break in their name.
func FuzzParseInfo(f *testing.F) {
	f.Add(realInfo)
	f.Add(strings.ReplaceAll(realInfo, "\r\n", "\n"))
	f.Add("")
	f.Add("txt:used_memory:1\nmaxmemory:0\nevicted_keys:0\nmaxmemory_policy:noeviction\n")
	f.Add("used_memory:-1\r\nmaxmemory:99999999999999999999\r\n\r\n#\r\n::\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		fields := parseInfo(in)
		for k, v := range fields {
			if k == "" || strings.ContainsAny(k, ":\n") || strings.Contains(v, "\n") || strings.HasSuffix(v, "\r") {
				t.Fatalf("field %q = %q from %q", k, v, in)
			}
		}
		m, err := memoryFromInfo(fields)
		if err != nil {
			return
		}
		if m.used < 0 || m.max < 0 || m.evicted < 0 || m.policy == "" || len(m.policy) > 32 {
			t.Fatalf("accepted %+v from %q", m, in)
		}
	})
}
