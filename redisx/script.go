package redisx

import (
	"context"
	"crypto/sha1"
	"encoding/hex"

	"github.com/redis/rueidis"
)

// Script is a Lua script run with EVALSHA, falling back to EVAL when a node
// answers NOSCRIPT (a fresh node, a failover, another shard), in the same
// call. Scripts are package-level values beside the Go that calls them.
type Script struct {
	src string
	sha string
}

// NewScript returns a Script for src; its SHA-1 is computed locally, so no
// SCRIPT LOAD round trip is ever needed.
func NewScript(src string) *Script {
	sum := sha1.Sum([]byte(src))
	return &Script{src: src, sha: hex.EncodeToString(sum[:])}
}

// Run executes the script once. Scripts are never retried by the client:
// most of them write.
func (s *Script) Run(ctx context.Context, c *Client, keys, args []string) rueidis.RedisResult {
	res := c.Do(ctx, s.EvalSha(keys, args))
	if isNoScript(res.Error()) {
		res = c.Do(ctx, s.Eval(keys, args))
	}
	return res
}

// EvalSha builds the EVALSHA command, for callers that pipeline the script
// with other commands in one DoMulti. Pass a NOSCRIPT result to Retry.
func (s *Script) EvalSha(keys, args []string) rueidis.Completed {
	return cmdBuilder.Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// Eval builds the EVAL command carrying the whole source.
func (s *Script) Eval(keys, args []string) rueidis.Completed {
	return cmdBuilder.Eval().Script(s.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// Retry re-runs the script with EVAL when res is a NOSCRIPT error from a
// pipelined EvalSha, and returns res unchanged otherwise.
func (s *Script) Retry(ctx context.Context, c *Client, res rueidis.RedisResult, keys, args []string) rueidis.RedisResult {
	if isNoScript(res.Error()) {
		return c.Do(ctx, s.Eval(keys, args))
	}
	return res
}

func isNoScript(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && re.IsNoScript()
}
