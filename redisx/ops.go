package redisx

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Get returns the value at key. A missing key is found == false, not an error.
func (c *Client) Get(ctx context.Context, key string) (value []byte, found bool, err error) {
	b, err := c.Do(ctx, c.B().Get().Key(key).Build()).AsBytes()
	if IsNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redisx: get: %w", err)
	}
	return b, true, nil
}

// Set stores value at key for ttl. A ttl of zero or less is refused: every
// key the service writes has a TTL.
func (c *Client) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("redisx: set %q: ttl must be positive", key)
	}
	// SET with PX is idempotent, so it may be retried after a broken connection.
	cmd := c.B().Set().Key(key).Value(rueidis.BinaryString(value)).PxMilliseconds(millis(ttl)).Build().ToRetryable()
	if err := c.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("redisx: set: %w", err)
	}
	return nil
}

// GetJSON decodes the JSON value at key into v. A missing key is
// found == false, not an error.
func (c *Client) GetJSON(ctx context.Context, key string, v any) (found bool, err error) {
	b, found, err := c.Get(ctx, key)
	if err != nil || !found {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("redisx: decode %q: %w", key, err)
	}
	return true, nil
}

// SetJSON stores v encoded as JSON at key for ttl.
func (c *Client) SetJSON(ctx context.Context, key string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("redisx: encode %q: %w", key, err)
	}
	return c.Set(ctx, key, b, ttl)
}

// Delete removes keys (with UNLINK, which frees memory off the main thread)
// and returns how many existed. Keys may live on different cluster slots:
// each goes in its own command, all in one pipeline.
func (c *Client) Delete(ctx context.Context, keys ...string) (int64, error) {
	return c.perKey(ctx, keys, func(k string) rueidis.Completed {
		return c.B().Unlink().Key(k).Build().ToRetryable()
	})
}

// Exists returns how many of keys exist.
func (c *Client) Exists(ctx context.Context, keys ...string) (int64, error) {
	return c.perKey(ctx, keys, func(k string) rueidis.Completed { return c.B().Exists().Key(k).Build() })
}

func (c *Client) perKey(ctx context.Context, keys []string, build func(string) rueidis.Completed) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	cmds := make([]rueidis.Completed, len(keys))
	for i, k := range keys {
		cmds[i] = build(k)
	}
	var n int64
	for _, r := range c.DoMulti(ctx, cmds...) {
		v, err := r.AsInt64()
		if err != nil {
			return n, fmt.Errorf("redisx: %w", err)
		}
		n += v
	}
	return n, nil
}

// Expire sets key's TTL (rounded up to whole milliseconds); it reports
// whether the key exists. A ttl of zero or less is refused: use Delete.
func (c *Client) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("redisx: expire %q: ttl must be positive", key)
	}
	ok, err := c.Do(ctx, c.B().Pexpire().Key(key).Milliseconds(millis(ttl)).Build().ToRetryable()).AsBool()
	if err != nil {
		return false, fmt.Errorf("redisx: expire: %w", err)
	}
	return ok, nil
}

// TTL returns key's remaining time to live: -1 for no TTL, -2 for no key,
// as Redis's PTTL says (in time.Duration units).
func (c *Client) TTL(ctx context.Context, key string) (time.Duration, error) {
	ms, err := c.Do(ctx, c.B().Pttl().Key(key).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redisx: ttl: %w", err)
	}
	if ms < 0 {
		return time.Duration(ms), nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// HSet sets fields of the hash at key and gives the hash ttl, in one
// MULTI/EXEC so the hash never exists without a TTL.
func (c *Client) HSet(ctx context.Context, key string, fields map[string]string, ttl time.Duration) error {
	if len(fields) == 0 {
		return nil
	}
	if ttl <= 0 {
		return fmt.Errorf("redisx: hset %q: ttl must be positive", key)
	}
	fv := c.B().Hset().Key(key).FieldValue()
	for f, v := range fields {
		fv = fv.FieldValue(f, v)
	}
	return c.multi(ctx, "hset", fv.Build(), c.B().Pexpire().Key(key).Milliseconds(millis(ttl)).Build())
}

// HGet returns one field of a hash; a missing key or field is found == false.
func (c *Client) HGet(ctx context.Context, key, field string) (value string, found bool, err error) {
	v, err := c.Do(ctx, c.B().Hget().Key(key).Field(field).Build()).ToString()
	if IsNil(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redisx: hget: %w", err)
	}
	return v, true, nil
}

// HGetAll returns every field of a hash (empty for a missing key).
func (c *Client) HGetAll(ctx context.Context, key string) (map[string]string, error) {
	m, err := c.Do(ctx, c.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("redisx: hgetall: %w", err)
	}
	return m, nil
}

// HDel removes fields from a hash and returns how many existed.
func (c *Client) HDel(ctx context.Context, key string, fields ...string) (int64, error) {
	if len(fields) == 0 {
		return 0, nil
	}
	n, err := c.Do(ctx, c.B().Hdel().Key(key).Field(fields...).Build().ToRetryable()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redisx: hdel: %w", err)
	}
	return n, nil
}

// HIncrBy adds n to a hash field and returns the new value. The hash gets
// ttl in the same atomic step if it has none. It is never retried, so a
// broken connection cannot count twice.
func (c *Client) HIncrBy(ctx context.Context, key, field string, n int64, ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("redisx: hincrby %q: ttl must be positive", key)
	}
	v, err := hincrScript.Run(ctx, c, []string{key}, []string{field, strconv.FormatInt(n, 10), strconv.FormatInt(millis(ttl), 10)}).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redisx: hincrby: %w", err)
	}
	return v, nil
}

// SAdd adds members to the set at key and gives it ttl, atomically.
func (c *Client) SAdd(ctx context.Context, key string, ttl time.Duration, members ...string) error {
	if len(members) == 0 {
		return nil
	}
	if ttl <= 0 {
		return fmt.Errorf("redisx: sadd %q: ttl must be positive", key)
	}
	return c.multi(ctx, "sadd", c.B().Sadd().Key(key).Member(members...).Build(),
		c.B().Pexpire().Key(key).Milliseconds(millis(ttl)).Build())
}

// SRem removes members from a set and returns how many were there.
func (c *Client) SRem(ctx context.Context, key string, members ...string) (int64, error) {
	if len(members) == 0 {
		return 0, nil
	}
	n, err := c.Do(ctx, c.B().Srem().Key(key).Member(members...).Build().ToRetryable()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redisx: srem: %w", err)
	}
	return n, nil
}

// SMembers returns the members of a set (empty for a missing key).
func (c *Client) SMembers(ctx context.Context, key string) ([]string, error) {
	m, err := c.Do(ctx, c.B().Smembers().Key(key).Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("redisx: smembers: %w", err)
	}
	return m, nil
}

// SIsMember reports whether member is in the set.
func (c *Client) SIsMember(ctx context.Context, key, member string) (bool, error) {
	ok, err := c.Do(ctx, c.B().Sismember().Key(key).Member(member).Build()).AsBool()
	if err != nil {
		return false, fmt.Errorf("redisx: sismember: %w", err)
	}
	return ok, nil
}

// SCard returns the number of members in the set.
func (c *Client) SCard(ctx context.Context, key string) (int64, error) {
	n, err := c.Do(ctx, c.B().Scard().Key(key).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redisx: scard: %w", err)
	}
	return n, nil
}

// Incr adds one to the counter at key and returns the new value; see IncrBy.
func (c *Client) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return c.IncrBy(ctx, key, 1, ttl)
}

// IncrBy adds n to the counter at key and returns the new value. The
// counter gets ttl in the same atomic step when it has no TTL yet (the
// first increment starts its lifetime), so no counter ever lives without
// one. It is never retried: a broken connection cannot count twice.
func (c *Client) IncrBy(ctx context.Context, key string, n int64, ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("redisx: incr %q: ttl must be positive", key)
	}
	v, err := incrScript.Run(ctx, c, []string{key}, []string{strconv.FormatInt(n, 10), strconv.FormatInt(millis(ttl), 10)}).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("redisx: incr: %w", err)
	}
	return v, nil
}

// incrScript: INCRBY, then PEXPIRE only when the key has no TTL, in one
// atomic step (a MULTI would need the TTL check in Lua anyway).
var incrScript = NewScript(`
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v`)

// hincrScript is incrScript for a hash field.
var hincrScript = NewScript(`
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return v`)

// multi runs cmds (all on one key) in MULTI/EXEC, one round trip. A
// command that fails inside the transaction (WRONGTYPE) is reported: its
// error is an element of EXEC's reply, not an error of the reply itself.
func (c *Client) multi(ctx context.Context, op string, cmds ...rueidis.Completed) error {
	all := make([]rueidis.Completed, 0, len(cmds)+2)
	all = append(all, c.B().Multi().Build())
	all = append(all, cmds...)
	all = append(all, c.B().Exec().Build())
	res := c.DoMulti(ctx, all...)
	for _, r := range res {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redisx: %s: %w", op, err)
		}
	}
	replies, err := res[len(res)-1].ToArray()
	if err != nil {
		return fmt.Errorf("redisx: %s: %w", op, err)
	}
	for _, r := range replies {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redisx: %s: %w", op, err)
		}
	}
	return nil
}

// millis is d in whole milliseconds, rounded up and at least 1: Redis
// takes TTLs in milliseconds, and PX 0 is an error while PEXPIRE 0 deletes
// the key, so a sub-millisecond TTL must not round down to 0.
func millis(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return max(ms, 1)
}
