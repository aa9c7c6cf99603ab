package redisx_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// singleNodeCluster starts a throwaway redis-server in cluster mode that
// owns every slot: the smallest real Redis Cluster.
func singleNodeCluster(t *testing.T) *redistest.Server {
	t.Helper()
	srv := redistest.StartServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	raw, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	if err := raw.Do(ctx, raw.B().ClusterAddslotsrange().StartSlotEndSlot().StartSlotEndSlot(0, 16383).Build()).Error(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	waitFor(t, 10*time.Second, "cluster_state:ok", func() bool {
		info, err := raw.Do(ctx, raw.B().ClusterInfo().Build()).ToString()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
	return srv
}

// TestBuilderMatchesRueidis: the builder Client.B hands out (made with
// unsafe in client.go, so it works before any connection) behaves as the
// builder of a real cluster-mode rueidis client: the same commands, the
// same slots, and the same panic on a multi-key command across slots.
func TestBuilderMatchesRueidis(t *testing.T) {
	srv := singleNodeCluster(t)
	cluster, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	if _, isCluster := cluster.Nodes()[srv.Addr]; !isCluster || len(cluster.Nodes()) != 1 {
		t.Fatalf("rueidis client nodes = %v; want the one cluster node", cluster.Nodes())
	}
	// Our builder before any connection: a client whose Redis is not there.
	cfg := redistest.Config(t)
	cfg.Addrs = []string{"127.0.0.1:1"}
	cfg.Cluster, cfg.SentinelMaster = false, ""
	cfg.DialTimeout = 100 * time.Millisecond
	ours, err := redisx.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()

	k := ours.Keys()
	builds := []struct {
		name  string
		build func(b rueidis.Builder) rueidis.Completed
	}{
		{"GET", func(b rueidis.Builder) rueidis.Completed { return b.Get().Key(k.Tagged("user", "1")).Build() }},
		{"SET PX", func(b rueidis.Builder) rueidis.Completed {
			return b.Set().Key(k.Tagged("script", "9")).Value("v").PxMilliseconds(100).Build()
		}},
		{"MGET one tag", func(b rueidis.Builder) rueidis.Completed {
			return b.Mget().Key(k.Tagged("s", "u1", "a"), k.Tagged("s", "u1", "b")).Build()
		}},
		{"EVALSHA one tag", func(b rueidis.Builder) rueidis.Completed {
			return b.Evalsha().Sha1("abc").Numkeys(2).Key(k.Session("t"), k.Tagged("session", "t", "x")).Arg("1").Build()
		}},
		{"PING (no key)", func(b rueidis.Builder) rueidis.Completed { return b.Ping().Build() }},
		{"MULTI (no key)", func(b rueidis.Builder) rueidis.Completed { return b.Multi().Build() }},
	}
	for _, tt := range builds {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.build(ours.B()), tt.build(cluster.B())
			if !reflect.DeepEqual(a.Commands(), b.Commands()) {
				t.Errorf("commands: ours %q, rueidis %q", a.Commands(), b.Commands())
			}
			if a.Slot() != b.Slot() {
				t.Errorf("slot: ours %d, rueidis %d", a.Slot(), b.Slot())
			}
		})
	}
	t.Run("cross-slot MGET panics in both", func(t *testing.T) {
		ourPanic, theirPanic := panicOf(func() { ours.B().Mget().Key(k.Tagged("user", "1"), k.Tagged("user", "2")).Build() }),
			panicOf(func() { cluster.B().Mget().Key(k.Tagged("user", "1"), k.Tagged("user", "2")).Build() })
		if ourPanic == "" || ourPanic != theirPanic {
			t.Errorf("cross-slot MGET: ours panicked with %q, rueidis with %q; want the same panic", ourPanic, theirPanic)
		}
	})

	// And the service works on a real cluster through that builder.
	t.Run("redisx on Redis Cluster", func(t *testing.T) {
		ccfg := redistest.Config(t)
		ccfg.Addrs, ccfg.Cluster, ccfg.SentinelMaster = []string{srv.Addr}, true, ""
		c := redistest.Connect(t, ccfg)
		if err := exercise(context.Background(), c, "cluster"); err != nil {
			t.Fatalf("Set/Get/Incr/HSet/Cache/Ping on Redis Cluster: %v", err)
		}
		if n, err := c.Delete(context.Background(), k.Tagged("user", "a"), k.Tagged("user", "b"), k.Tagged("script", "c")); err != nil || n != 0 {
			t.Errorf("Delete across slots = %d, %v; want 0, nil", n, err)
		}
	})
}

func panicOf(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}
