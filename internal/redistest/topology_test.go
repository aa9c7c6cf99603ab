package redistest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/theaterscriptpro/tsp/internal/redistest"
)

func TestKeySlotMatchesRedis(t *testing.T) {
	t.Parallel()
	c := redistest.SharedCluster(t)
	rdb, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{c.Nodes[0].Addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	keys := []string{"", "a", "foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{", "}", "{}", "tsp:session:{abc}:x", "\xff\x00binary"}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("t:%d:user:{%d}", i, i*7919))
	}
	for _, k := range keys {
		want, err := rdb.Do(context.Background(), rdb.B().ClusterKeyslot().Key(k).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if got := redistest.KeySlot(k); int64(got) != want {
			t.Errorf("KeySlot(%q) = %d, want %d (CLUSTER KEYSLOT)", k, got, want)
		}
	}
}

func TestSharedClusterShape(t *testing.T) {
	t.Parallel()
	c := redistest.SharedCluster(t)
	if got := len(c.Nodes); got != 6 {
		t.Fatalf("cluster has %d nodes, want 6", got)
	}
	masters := c.Masters(t)
	if len(masters) != 3 {
		t.Fatalf("cluster has %d masters, want 3", len(masters))
	}
	// Keys land on all masters and Keys/DeleteKeys see every one of them.
	rdb := redistest.Connect(t, c.Config(t))
	ctx := context.Background()
	var want []string
	for i := range 60 {
		k := rdb.Keys().Tagged("user", fmt.Sprint(i))
		want = append(want, k)
		if err := rdb.Set(ctx, k, []byte("x"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	byMaster := redistest.KeysByMaster(t, rdb)
	if len(byMaster) != 3 {
		t.Errorf("keys on %d masters, want 3: %v", len(byMaster), byMaster)
	}
	got := redistest.Keys(t, rdb)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Keys = %d keys, want %d: %v", len(got), len(want), got)
	}
	redistest.DeleteKeys(t, rdb)
	if got := redistest.Keys(t, rdb); len(got) != 0 {
		t.Fatalf("after DeleteKeys, Keys = %v, want none", got)
	}
}

func TestClusterKillMasterPromotesReplica(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	key := "some{key}"
	before := c.MasterOf(t, key)
	dead := c.KillMaster(t, key)
	if dead != before {
		t.Fatalf("KillMaster killed %s, want the master of the key %s", dead.Addr, before.Addr)
	}
	c.WaitHealthy(t, redistest.ClusterNodeTimeout+10*time.Second)
	if after := c.MasterOf(t, key); after == dead {
		t.Fatalf("slot of %q still owned by the killed node %s", key, dead.Addr)
	}
	// The old master comes back as a replica of the new one.
	dead.Start(t)
	c.WaitHealthy(t, 20*time.Second)
	for _, m := range c.Masters(t) {
		if m == dead {
			t.Fatalf("restarted node %s is a master again, want a replica", dead.Addr)
		}
	}
}

func TestSentinelKillMasterPromotesReplica(t *testing.T) {
	t.Parallel()
	g := redistest.StartSentinel(t)
	before := g.Master(t)
	if before != g.Servers[0] {
		t.Fatalf("master is %s, want the first server %s", before.Addr, g.Servers[0].Addr)
	}
	start := time.Now()
	g.KillMaster(t)
	g.WaitHealthy(t, redistest.SentinelDownAfter+redistest.SentinelFailoverTimeout+5*time.Second)
	t.Logf("sentinels promoted the replica %s after the kill", time.Since(start).Round(time.Millisecond))
	if after := g.Master(t); after != g.Servers[1] {
		t.Fatalf("after failover the master is %v, want the replica %s", after, g.Servers[1].Addr)
	}
	// Not tested here: restarting the old master. Sentinel turns it into a
	// replica only after ~10-20s (it INFOs replicas every 10s), too slow for
	// every run; the cluster test covers Server.Start on a cluster node.
}

func TestTopologyFromEnvironment(t *testing.T) {
	tests := []struct {
		env, want string
		wantErr   bool
	}{
		{"", redistest.TopologyStandalone, false},
		{"standalone", redistest.TopologyStandalone, false},
		{"cluster", redistest.TopologyCluster, false},
		{"sentinel", redistest.TopologySentinel, false},
		{"Cluster", "", true},
		{"redis://x", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(redistest.TopologyEnv, tt.env)
			got, err := redistest.Topology()
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("Topology() with %q = %q, %v; want %q, error %v", tt.env, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
