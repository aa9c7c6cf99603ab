package redisx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"
	"github.com/sony/gobreaker/v2"
)

// Nodes returns a client for each Redis server this Client is connected to,
// by address: for a standalone server that server; with Sentinel the
// current master; with Cluster every master and replica it knows. It is
// nil before the first connection.
//
// Commands sent through these bypass the deadline, breaker and metrics of
// Do. They are for work that must reach every server, such as SCAN over a
// whole cluster, in tests and operator tools; the service's own commands go
// through Do, which routes them by key.
func (c *Client) Nodes() map[string]rueidis.Client {
	rdb := c.rdb.Load()
	if rdb == nil {
		return nil
	}
	return (*rdb).Nodes()
}

// The circuit breakers follow the topology: there is one per node that
// takes commands, and a command is guarded by the breaker of the node
// rueidis sends it to. A standalone server has one breaker; with Sentinel
// it is the current master's; with Cluster each master has its own and a
// hash slot maps to its current owner's, so one master's outage fails fast
// for its own slots only.
//
// rueidis reports no topology events, but its view can be read: Nodes()
// names the master it sends to (Sentinel) or every node it routes to
// (Cluster). A watcher compares that view with the one the breakers were
// built for. When rueidis has moved to a promoted master, the promoted
// node gets a breaker of its own, closed, and the dead master's is dropped:
// the next call goes to the new master at once instead of waiting for the
// old breaker's half-open probe, and no failure of the old master is held
// against the new one. On Cluster the slot owners come from CLUSTER SLOTS,
// and a new owner takes over a slot only once rueidis has dropped the old
// one: until then rueidis still sends the slot's commands to the old
// master, and their failures are the old master's.

// topologyPoll is how often the watcher reads rueidis's view while a
// breaker is not closed or an update waits for rueidis to catch up: a
// promoted master gets traffic at most this long after rueidis has it.
// topologyRecheck is how often it looks while all is well (a manual
// failover or resharding, which fail no calls, is seen that late).
const (
	topologyPoll    = 50 * time.Millisecond
	topologyRecheck = time.Second
)

// nodeBreaker is the circuit breaker of one node.
type nodeBreaker struct {
	// addr is the node's address: "" for a standalone server, for the
	// breaker in use before the first connection, and for Cluster's
	// breaker of keyless commands.
	addr string
	*gobreaker.TwoStepCircuitBreaker[struct{}]
	// lease is the liveness of the node's connection, for the local tier
	// (local.go). A breaker made for a promoted node starts with none.
	lease
}

// route maps a command to its node's breaker. It is never changed once
// stored: the watcher stores a new one.
type route struct {
	// any guards every command on a standalone server or Sentinel (where
	// all go to the master) and, on Cluster, the keyless ones, which
	// rueidis sends to any node.
	any *nodeBreaker
	// slots (Cluster) is each hash slot's master's breaker; nil until the
	// slots are known, and for a slot no master serves.
	slots *[keylessSlot]*nodeBreaker
	// masters (Cluster) are the breakers in slots, by address.
	masters map[string]*nodeBreaker
}

// breakers returns every breaker in use, for the metrics.
func (r *route) breakers() []*nodeBreaker {
	out := []*nodeBreaker{r.any}
	for _, b := range r.masters {
		out = append(out, b)
	}
	return out
}

// topologyWatch is the watcher's own state; only followTopology touches it.
type topologyWatch struct {
	nodes   []string  // rueidis's nodes, sorted, when the slots were last read
	read    time.Time // when the slots were last read
	pending bool      // the last reading could not be applied yet
}

func (c *Client) newBreaker(addr string) *nodeBreaker {
	cfg := c.cfg
	name := "redis"
	if addr != "" {
		name = "redis " + addr
	}
	return &nodeBreaker{addr: addr, TwoStepCircuitBreaker: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpenFor,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return counts.ConsecutiveFailures >= cfg.BreakerFailures
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errBreakerExcluded) },
		// Called with the breaker's lock held: it must not call into it.
		OnStateChange: func(name string, from, to gobreaker.State) {
			cfg.Logger.Warn("redis circuit breaker", "breaker", name, "from", from.String(), "to", to.String())
		},
	})}
}

// breakerFor returns the breaker guarding a command for slot: its master's
// on Cluster (the keyless breaker for keyless commands and unknown slots),
// else the client's one.
func (c *Client) breakerFor(slot uint16) *nodeBreaker {
	r := c.routing.Load()
	if r.slots == nil || slot >= keylessSlot {
		return r.any
	}
	if b := r.slots[slot]; b != nil {
		return b
	}
	return r.any
}

// breakerState returns the worst state of the breakers in use (open, then
// half-open, then closed), for the metrics.
func (c *Client) breakerState() gobreaker.State {
	worst := gobreaker.StateClosed
	for _, b := range c.routing.Load().breakers() {
		switch st := b.State(); {
		case st == gobreaker.StateOpen:
			return st
		case st == gobreaker.StateHalfOpen:
			worst = st
		}
	}
	return worst
}

// watchTopology runs followTopology until the client is closed: often
// while a breaker is not closed or an update waits, else now and then.
func (c *Client) watchTopology(rdb rueidis.Client) {
	t := time.NewTimer(topologyPoll)
	defer t.Stop()
	for {
		select {
		case <-c.life.Done():
			return
		case <-t.C:
		}
		c.followTopology(c.life, rdb)
		wait := topologyRecheck
		if c.topo.pending || c.breakerState() != gobreaker.StateClosed {
			wait = topologyPoll
		}
		t.Reset(wait)
	}
}

// followTopology brings the breakers in line with rueidis's current view.
// connect calls it once before the client is used, then only the watcher
// does.
func (c *Client) followTopology(ctx context.Context, rdb rueidis.Client) {
	switch {
	case c.cfg.SentinelMaster != "":
		c.followMaster(rdb)
	case c.cfg.Cluster:
		c.followSlots(ctx, rdb)
	}
}

// followMaster (Sentinel) gives a new master a breaker of its own once
// rueidis sends to it (rueidis switches on Sentinel's +switch-master).
func (c *Client) followMaster(rdb rueidis.Client) {
	addr := ""
	for a := range rdb.Nodes() { // one: the master (replicas are never read from)
		addr = a
	}
	old := c.routing.Load()
	if addr == "" || addr == old.any.addr {
		return
	}
	c.routing.Store(&route{any: c.newBreaker(addr)})
	if old.any.addr != "" {
		c.cfg.Logger.Warn("redis master changed; its circuit breaker starts closed",
			"from", old.any.addr, "to", addr, "old breaker", old.any.State().String())
	}
}

// followSlots (Cluster) reads the slot owners with CLUSTER SLOTS when
// rueidis's set of nodes changed, when a master the breakers know has left
// rueidis's view, when the last reading waits to be applied, and every
// topologyRecheck; it applies a reading once rueidis agrees with it.
func (c *Client) followSlots(ctx context.Context, rdb rueidis.Client) {
	nodes := rdb.Nodes()
	addrs := make([]string, 0, len(nodes))
	for a := range nodes {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	cur, w := c.routing.Load(), &c.topo
	lost := false
	for a := range cur.masters {
		if _, ok := nodes[a]; !ok {
			lost = true
		}
	}
	if cur.slots != nil && !w.pending && !lost && slices.Equal(addrs, w.nodes) && time.Since(w.read) < topologyRecheck {
		return
	}
	w.nodes, w.read = addrs, time.Now()
	v, err := c.readSlots(ctx, nodes, cur, addrs)
	if err != nil {
		w.pending = true
		c.cfg.Logger.Debug("redis cluster: reading the slots failed", "error", err.Error())
		return
	}
	w.pending = !v.agrees(cur, nodes)
	if w.pending {
		return
	}
	next, changed := c.routeFor(v, cur)
	if !changed {
		return
	}
	c.routing.Store(next)
	if cur.slots == nil {
		return // the first reading
	}
	var gone, added []string
	for a, b := range cur.masters {
		if next.masters[a] != b {
			gone = append(gone, a+" ("+b.State().String()+")")
		}
	}
	for a, b := range next.masters {
		if cur.masters[a] != b {
			added = append(added, a)
		}
	}
	slices.Sort(gone)
	slices.Sort(added)
	c.cfg.Logger.Warn("redis cluster masters changed; new masters' circuit breakers start closed",
		"dropped", gone, "new", added)
}

// slotView is one node's answer to CLUSTER SLOTS.
type slotView struct {
	ranges   []slotRange
	masters  map[string]bool
	replicas map[string]bool
}

type slotRange struct {
	lo, hi uint16
	master string
}

// agrees reports whether rueidis routes as v says, as far as its nodes
// tell: it knows every master v names, and every master the breakers know
// that v no longer names as one is gone from rueidis's view (after a
// failover rueidis drops the dead master when it reads the new slots;
// until then it still sends the slots' commands there) or is one of v's
// replicas (a manual failover: the old master is alive and redirects).
func (v *slotView) agrees(cur *route, nodes map[string]rueidis.Client) bool {
	for a := range v.masters {
		if _, ok := nodes[a]; !ok {
			return false
		}
	}
	for a := range cur.masters {
		if _, known := nodes[a]; known && !v.masters[a] && !v.replicas[a] {
			return false
		}
	}
	return true
}

// routeFor builds the route for v, keeping the breaker of every node that
// stays a master: only the nodes the change concerns get new ones. The
// keyless breaker is new when the set of masters changed. changed reports
// whether the route differs from cur.
func (c *Client) routeFor(v *slotView, cur *route) (next *route, changed bool) {
	next = &route{any: cur.any, slots: new([keylessSlot]*nodeBreaker), masters: map[string]*nodeBreaker{}}
	for a := range v.masters {
		b := cur.masters[a]
		if b == nil {
			b, changed = c.newBreaker(a), true
		}
		next.masters[a] = b
	}
	if len(next.masters) != len(cur.masters) {
		changed = true
	}
	if changed && cur.slots != nil {
		next.any = c.newBreaker("")
	}
	for _, r := range v.ranges {
		for s := int(r.lo); s <= int(r.hi); s++ {
			next.slots[s] = next.masters[r.master]
		}
	}
	if cur.slots == nil || *cur.slots != *next.slots {
		changed = true
	}
	return next, changed
}

// readSlots asks the nodes for CLUSTER SLOTS, the masters whose breakers
// are closed first (a dead node would cost its deadline), and returns the
// first answer.
func (c *Client) readSlots(ctx context.Context, nodes map[string]rueidis.Client, cur *route, addrs []string) (*slotView, error) {
	order := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if b := cur.masters[a]; b != nil && b.State() == gobreaker.StateClosed {
			order = append(order, a)
		}
	}
	for _, a := range addrs {
		if !slices.Contains(order, a) {
			order = append(order, a)
		}
	}
	err := errors.New("no node")
	for _, a := range order {
		n := nodes[a]
		cctx, cancel := withBudget(ctx, c.cfg.CommandTimeout)
		res := n.Do(cctx, n.B().ClusterSlots().Build())
		cancel()
		var v *slotView
		if v, err = parseSlots(res, a); err == nil {
			return v, nil
		}
		err = fmt.Errorf("%s: %w", a, err)
	}
	return nil, err
}

// parseSlots reads a CLUSTER SLOTS reply from the node at asked: entries
// of [first slot, last slot, master, replicas...], each node as [host,
// port, ...], where an empty host means the asked node's and "?" an
// unknown one (as rueidis reads it).
func parseSlots(res rueidis.RedisResult, asked string) (*slotView, error) {
	entries, err := res.ToArray()
	if err != nil {
		return nil, err
	}
	v := &slotView{masters: map[string]bool{}, replicas: map[string]bool{}}
	for _, e := range entries {
		f, err := e.ToArray()
		if err != nil || len(f) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS entry %v: %v", e, err)
		}
		lo, err1 := f[0].AsInt64()
		hi, err2 := f[1].AsInt64()
		if err := errors.Join(err1, err2); err != nil || lo < 0 || hi < lo || hi >= keylessSlot {
			return nil, fmt.Errorf("CLUSTER SLOTS range %d-%d: %v", lo, hi, err)
		}
		master := nodeAddr(f[2], asked)
		if master == "" {
			continue
		}
		v.masters[master] = true
		v.ranges = append(v.ranges, slotRange{uint16(lo), uint16(hi), master})
		for _, r := range f[3:] {
			if a := nodeAddr(r, asked); a != "" {
				v.replicas[a] = true
			}
		}
	}
	return v, nil
}

// nodeAddr returns the address of a CLUSTER SLOTS node entry, or "".
func nodeAddr(m rueidis.RedisMessage, asked string) string {
	f, err := m.ToArray()
	if err != nil || len(f) < 2 {
		return ""
	}
	host, err1 := f[0].ToString()
	port, err2 := f[1].AsInt64()
	if err1 != nil || err2 != nil || host == "?" {
		return ""
	}
	if host == "" {
		host, _, _ = net.SplitHostPort(asked)
	}
	return net.JoinHostPort(host, strconv.FormatInt(port, 10))
}
