package redisx

import "github.com/redis/rueidis"

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
