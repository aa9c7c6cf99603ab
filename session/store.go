package session

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/theaterscriptpro/tsp/redisx"
)

// Store keeps sessions in Redis. It is safe for concurrent use; make one
// with NewStore and share it.
type Store struct {
	rdb     *redisx.Client
	keys    redisx.Keys
	cfg     Config
	idle    string // IdleTimeout in ms, as the scripts take it
	abs     string
	touch   string
	max     string
	metrics *metrics
	active  *activeSessions

	// localTTL is how long a local copy may live (local.go): TouchInterval.
	localTTL time.Duration
}

// NewStore validates cfg and returns a Store on rdb.
func NewStore(rdb *redisx.Client, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil Redis client", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{
		rdb:     rdb,
		keys:    rdb.Keys(),
		cfg:     cfg,
		idle:    msString(cfg.IdleTimeout),
		abs:     msString(cfg.AbsoluteTimeout),
		touch:   msString(cfg.TouchInterval),
		max:     strconv.Itoa(cfg.MaxPerUser),
		metrics: newMetrics(),
		active:  newActiveSessions(time.Now),
		// A session's local copy is rewritten at least every TouchInterval
		// while it is used; the epoch's is re-read as often.
		localTTL: cfg.TouchInterval,
	}
	return s, nil
}

// write runs a script that writes keys and marks them written for the
// local tier (redisx MarkWritten), whatever the reply: a write whose reply
// was lost may have been applied. Every write script goes through it, so
// none can forget that this process must not serve the copies it had.
func (s *Store) write(ctx context.Context, script *redisx.Script, keys, args []string) rueidis.RedisResult {
	res := script.Run(ctx, s.rdb, keys, args)
	s.rdb.MarkWritten(keys...)
	return res
}

func msString(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// Config returns the store's configuration with defaults filled in.
func (s *Store) Config() Config { return s.cfg }

// The keys of one user's sessions, all under the user's hash tag.
func (s *Store) sessionKey(userID, hash string) string {
	return s.keys.Tagged("session", userID, hash)
}
func (s *Store) indexKey(userID string) string { return s.keys.Tagged("sessions:user", userID) }
func (s *Store) epochKey(userID string) string { return s.keys.Tagged("sessions:epoch", userID) }

// sessionPrefix is sessionKey without the hash, for scripts that reach
// sessions through the index: an empty suffix escapes to nothing, so
// sessionPrefix(u)+h == sessionKey(u, h) (base64url is never escaped).
func (s *Store) sessionPrefix(userID string) string { return s.keys.Tagged("session", userID, "") }

// now is the scripts' first argument: the test clock in ms, or "0" for
// Redis TIME.
func (s *Store) now() string {
	if s.cfg.Now == nil {
		return "0"
	}
	return strconv.FormatInt(s.cfg.Now().UnixMilli(), 10)
}

// Create starts a new session for ns.UserID and returns its token, the
// only place the token ever appears: Redis keeps its SHA-256 alone. When
// the user already has MaxPerUser live sessions, the one nearest its idle
// expiry ends. One round trip.
func (s *Store) Create(ctx context.Context, ns NewSession) (token string, _ Session, err error) {
	if !ValidUserID(ns.UserID) {
		return "", Session{}, fmt.Errorf("%w: UserID: 1 to %d characters of [A-Za-z0-9_-]", ErrInvalid, MaxUserIDLen)
	}
	rec, data, err := encodeRecord(ns.Email, ns.Role, ns.UserAgent, ns.IP, ns.Attrs)
	if err != nil {
		return "", Session{}, err
	}
	token, hash := mintToken(ns.UserID)
	id := newID()
	res := s.write(ctx, createScript,
		[]string{s.sessionKey(ns.UserID, hash), s.indexKey(ns.UserID), s.epochKey(ns.UserID)},
		[]string{s.now(), hash, s.idle, s.abs, s.max, s.sessionPrefix(ns.UserID), id, data})
	arr, err := res.ToArray()
	if err != nil {
		return "", Session{}, fail("create", err)
	}
	if len(arr) < 2 {
		return "", Session{}, fmt.Errorf("session: create: unexpected reply")
	}
	// The hashes of the sessions it ended to stay within MaxPerUser follow:
	// this process must not serve their local copies (local.go).
	for _, m := range arr[2:] {
		if h, err := m.ToString(); err == nil {
			s.rdb.MarkWritten(s.sessionKey(ns.UserID, h))
		}
	}
	nowMS, err1 := arr[0].ToString()
	capped, err2 := arr[1].AsInt64()
	created, err3 := strconv.ParseInt(nowMS, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", Session{}, fmt.Errorf("session: create: unexpected reply: %w", err)
	}
	s.metrics.created.Inc()
	if capped > 0 {
		s.metrics.revoked.WithLabelValues(reasonPerUserCap).Add(float64(capped))
	}
	at := time.UnixMilli(created)
	ae := at.Add(s.cfg.AbsoluteTimeout)
	return token, Session{
		ID: id, UserID: ns.UserID, Email: rec.Email, Role: rec.Role,
		CreatedAt: at, LastSeenAt: at, IdleExpiresAt: minTime(at.Add(s.cfg.IdleTimeout), ae), ExpiresAt: ae,
		UserAgent: rec.UserAgent, IP: rec.IP, Attrs: cloneMap(rec.Attrs), version: "0",
	}, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Get returns the live session token names, without counting it as
// activity. A malformed, unknown, expired or revoked token is ErrNotFound,
// and is not sent to Redis if malformed. No round trip when the local tier
// holds the session and the user's epoch (see local.go), else one.
func (s *Store) Get(ctx context.Context, token string) (Session, error) {
	return s.load(ctx, token, false)
}

// Touch is Get that counts as activity: when the last write is older than
// TouchInterval it moves LastSeenAt to now and the idle expiry forward
// (never past ExpiresAt), in the same script. No round trip when no write
// is due and the local tier holds the session and the user's epoch; one
// when a write is due or the local tier cannot decide.
func (s *Store) Touch(ctx context.Context, token string) (Session, error) {
	return s.load(ctx, token, true)
}

func (s *Store) load(ctx context.Context, token string, touch bool) (Session, error) {
	userID, hash, ok := parseToken(token)
	if !ok {
		s.metrics.lookups.WithLabelValues("malformed").Inc()
		return Session{}, ErrNotFound
	}
	sess, got, err := s.readLocal(ctx, userID, hash, touch)
	switch {
	case err != nil:
		s.metrics.lookups.WithLabelValues(failKind(err)).Inc()
		return Session{}, fail("get", err)
	case got == localAlive:
		s.metrics.lookups.WithLabelValues("ok").Inc()
		s.active.found(userID, hash)
		return sess, nil
	case got == localNotFound:
		s.metrics.lookups.WithLabelValues("not_found").Inc()
		return Session{}, ErrNotFound
	}
	flag := "0"
	if touch {
		flag = "1"
	}
	sk := s.sessionKey(userID, hash)
	keys := []string{sk, s.indexKey(userID), s.epochKey(userID)}
	res := loadScript.Run(ctx, s.rdb, keys, []string{s.now(), hash, flag, s.touch, s.idle})
	if touch && errors.Is(res.Error(), redisx.ErrOutOfMemory) {
		// Redis is full and refused the touch's write. The session can
		// still be read: serve it without moving its idle expiry (a later
		// touch does, once Redis has room) rather than turn every
		// signed-in request into a 503 while Redis is full.
		s.metrics.touchRefused.Inc()
		res = loadScript.Run(ctx, s.rdb, keys, []string{s.now(), hash, "0", s.touch, s.idle})
	}
	if n, err := res.AsInt64(); err == nil && n == 0 {
		// The script found the session dead and deleted it: a local copy
		// this process holds must not outlive that.
		s.rdb.MarkWritten(sk)
		s.metrics.lookups.WithLabelValues("not_found").Inc()
		return Session{}, ErrNotFound
	}
	sess, wrote, err := decodeReply(res, userID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			s.metrics.lookups.WithLabelValues("not_found").Inc()
			return Session{}, err
		}
		s.metrics.lookups.WithLabelValues(failKind(err)).Inc()
		return Session{}, fail("get", err)
	}
	s.metrics.lookups.WithLabelValues("ok").Inc()
	s.active.found(userID, hash)
	if wrote {
		// The next lookup here must see this write, not the copy before it.
		s.rdb.MarkWritten(sk)
		s.metrics.touches.Inc()
	}
	return sess, nil
}

// decodeReply turns a script's {value, wrote} reply into a Session; a
// nil reply is ErrNotFound.
func decodeReply(res rueidis.RedisResult, userID string) (Session, bool, error) {
	arr, err := res.ToArray()
	if redisx.IsNil(err) {
		return Session{}, false, ErrNotFound
	}
	if err != nil {
		return Session{}, false, err
	}
	if len(arr) != 2 {
		return Session{}, false, fmt.Errorf("session: unexpected reply of %d elements", len(arr))
	}
	v, err := arr[0].ToString()
	if err != nil {
		return Session{}, false, fmt.Errorf("session: unexpected reply: %w", err)
	}
	sess, err := parseValue(v, userID)
	if err != nil {
		return Session{}, false, err
	}
	wrote, _ := arr[1].AsInt64()
	return sess, wrote == 1, nil
}

// parseValue reads a stored session: "1|ca|ls|ie|ae|ep|v|id|data" (see
// scripts.go).
func parseValue(v, userID string) (Session, error) {
	sess, _, err := parseStored(v, userID)
	return sess, err
}

// parseStored is parseValue that also returns the epoch the session was
// born in, which the local tier compares with the user's.
func parseStored(v, userID string) (Session, int64, error) {
	var head [8]string
	rest := v
	for i := range head {
		var ok bool
		head[i], rest, ok = strings.Cut(rest, "|")
		if !ok {
			return Session{}, 0, fmt.Errorf("session: stored value has %d fields, want 9", i+1)
		}
	}
	if head[0] != "1" {
		return Session{}, 0, fmt.Errorf("session: stored value has format %q, want 1", head[0])
	}
	var t [4]time.Time
	for i := range t {
		n, err := strconv.ParseInt(head[1+i], 10, 64)
		if err != nil {
			return Session{}, 0, fmt.Errorf("session: stored time %d is not a number", i)
		}
		t[i] = time.UnixMilli(n)
	}
	ep, err := strconv.ParseInt(head[5], 10, 64)
	if err != nil {
		return Session{}, 0, fmt.Errorf("session: stored epoch is not a number")
	}
	rec, err := decodeRecord(rest)
	if err != nil {
		return Session{}, 0, err
	}
	return Session{
		ID: head[7], UserID: userID, Email: rec.Email, Role: rec.Role,
		CreatedAt: t[0], LastSeenAt: t[1], IdleExpiresAt: t[2], ExpiresAt: t[3],
		UserAgent: rec.UserAgent, IP: rec.IP, Attrs: rec.Attrs, version: head[6],
	}, ep, nil
}

// decodedRecords remembers the last records decoded, by their JSON: every
// request of a signed-in user reads the same stored session (a local copy,
// mostly), and decoding its JSON was a fifth of a /api/me hit's
// allocations and a tenth of its CPU (issue 16). A fixed table of slots,
// each holding one record and overwritten by the next one that hashes
// there: bounded memory, no lock, and a wrong slot costs one decode.
var decodedRecords [256]atomic.Pointer[decodedRecord]

type decodedRecord struct {
	json string
	rec  record
}

var decodedSeed = maphash.MakeSeed()

// decodeRecord decodes a stored record's JSON, from decodedRecords when it
// was decoded before. Attrs is the caller's own copy: callers may change it.
func decodeRecord(js string) (record, error) {
	slot := &decodedRecords[maphash.String(decodedSeed, js)%uint64(len(decodedRecords))]
	if d := slot.Load(); d != nil && d.json == js {
		rec := d.rec
		rec.Attrs = maps.Clone(rec.Attrs)
		return rec, nil
	}
	var rec record
	if err := json.Unmarshal([]byte(js), &rec); err != nil {
		return record{}, fmt.Errorf("session: stored data: %w", err)
	}
	d := &decodedRecord{json: js, rec: rec}
	d.rec.Attrs = maps.Clone(rec.Attrs) // the table's copy, never handed out
	slot.Store(d)
	return rec, nil
}

// maxUpdateTries bounds Update's compare-and-set loop.
const maxUpdateTries = 8

// Update reads the session, lets fn change it, and writes the change only
// if the session is still alive and unchanged since the read (else it
// reads again, up to 8 times, then ErrConflict). fn may change Email,
// Role, UserAgent, IP and Attrs; other fields are the store's and changes
// to them are ignored. fn may run more than once. A session deleted,
// rotated or revoked meanwhile is never written, so never brought back:
// Update returns ErrNotFound. Two round trips.
func (s *Store) Update(ctx context.Context, token string, fn func(*Session)) (Session, error) {
	userID, hash, ok := parseToken(token)
	if !ok {
		return Session{}, ErrNotFound
	}
	for range maxUpdateTries {
		cur, err := s.Get(ctx, token)
		if err != nil {
			return Session{}, err
		}
		next := cur
		next.Attrs = cloneMap(cur.Attrs)
		fn(&next)
		rec, data, err := encodeRecord(next.Email, next.Role, next.UserAgent, next.IP, next.Attrs)
		if err != nil {
			return Session{}, err
		}
		n, err := s.write(ctx, updateScript,
			[]string{s.sessionKey(userID, hash), s.epochKey(userID)},
			[]string{s.now(), cur.version, data}).AsInt64()
		if err != nil {
			return Session{}, fail("update", err)
		}
		switch n {
		case 1:
			v, _ := strconv.ParseInt(cur.version, 10, 64)
			cur.Email, cur.Role, cur.UserAgent, cur.IP, cur.Attrs = rec.Email, rec.Role, rec.UserAgent, rec.IP, cloneMap(rec.Attrs)
			cur.version = strconv.FormatInt(v+1, 10)
			return cur, nil
		case -1:
			return Session{}, ErrNotFound
		}
	}
	return Session{}, ErrConflict
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Delete ends the session token names (logout). Deleting a session that
// is not there is not an error. One round trip.
func (s *Store) Delete(ctx context.Context, token string) error {
	userID, hash, ok := parseToken(token)
	if !ok {
		return nil
	}
	sk := s.sessionKey(userID, hash)
	n, err := s.write(ctx, deleteScript,
		[]string{sk, s.indexKey(userID)},
		[]string{s.now(), hash}).AsInt64()
	if err != nil {
		return fail("delete", err)
	}
	if n > 0 {
		s.metrics.revoked.WithLabelValues("delete").Inc()
	}
	return nil
}

// DeleteAll ends every session of userID (the original guide's
// deleteUserSessions) except the one exceptToken names, if it is the
// user's and alive ("sign out everywhere else"); pass "" to end them all.
// It bumps the user's epoch first, so sessions the index may have missed
// are dead too. It returns how many sessions it deleted. One round trip.
func (s *Store) DeleteAll(ctx context.Context, userID, exceptToken string) (int, error) {
	if !ValidUserID(userID) {
		return 0, nil // no such user can own a session
	}
	keys := []string{s.indexKey(userID), s.epochKey(userID)}
	keepHash := ""
	if exceptUser, h, ok := parseToken(exceptToken); ok &&
		subtle.ConstantTimeCompare([]byte(exceptUser), []byte(userID)) == 1 {
		keepHash = h
		keys = append(keys, s.sessionKey(userID, h))
	}
	n, err := s.write(ctx, deleteAllScript, keys,
		[]string{s.now(), s.sessionPrefix(userID), keepHash, s.abs}).AsInt64()
	if err != nil {
		return 0, fail("delete all", err)
	}
	s.metrics.revoked.WithLabelValues("delete_all").Add(float64(n))
	return int(n), nil
}

// DeleteByID ends the session of userID whose public id is sessionID
// (DELETE /api/sessions/{id}); it reports whether there was one. Only the
// user's own sessions are looked at. One round trip.
func (s *Store) DeleteByID(ctx context.Context, userID, sessionID string) (bool, error) {
	if !ValidUserID(userID) || !ValidID(sessionID) {
		return false, nil
	}
	hashes, err := s.write(ctx, deleteByIDScript, []string{s.indexKey(userID)},
		[]string{s.now(), s.sessionPrefix(userID), sessionID}).AsStrSlice()
	if err != nil {
		return false, fail("delete by id", err)
	}
	// The script names the sessions it deleted, so this process stops
	// serving their local copies before it returns (local.go).
	for _, h := range hashes {
		s.rdb.MarkWritten(s.sessionKey(userID, h))
	}
	n := len(hashes)
	if n > 0 {
		s.metrics.revoked.WithLabelValues("delete_by_id").Inc()
	}
	return n > 0, nil
}

// List returns the live sessions of userID, most recently seen first. Its
// cost is linear in that user's sessions alone (at most MaxPerUser plus
// the dead it removes from the index on the way). One round trip.
func (s *Store) List(ctx context.Context, userID string) ([]Session, error) {
	if !ValidUserID(userID) {
		return nil, nil
	}
	arr, err := listScript.Run(ctx, s.rdb,
		[]string{s.indexKey(userID), s.epochKey(userID)},
		[]string{s.now(), s.sessionPrefix(userID)}).ToArray()
	if err != nil {
		return nil, fail("list", err)
	}
	out := make([]Session, 0, len(arr))
	for _, m := range arr {
		v, err := m.ToString()
		if err != nil {
			return nil, fmt.Errorf("session: list: %w", err)
		}
		sess, err := parseValue(v, userID)
		if err != nil {
			return nil, err
		}
		out = append(out, sess)
	}
	slices.SortFunc(out, func(a, b Session) int { return b.LastSeenAt.Compare(a.LastSeenAt) })
	return out, nil
}

// Rotate gives the session token names a new token and ends the old one
// in the same atomic step: same ID, creation, absolute expiry and data;
// the index entry is swapped. Rotation counts as activity, but the idle
// expiry never passes ExpiresAt. Use it when privileges change. One round
// trip.
func (s *Store) Rotate(ctx context.Context, token string) (newToken string, _ Session, err error) {
	userID, oldHash, ok := parseToken(token)
	if !ok {
		return "", Session{}, ErrNotFound
	}
	next, newHash := mintToken(userID)
	res := s.write(ctx, rotateScript,
		[]string{s.sessionKey(userID, oldHash), s.sessionKey(userID, newHash), s.indexKey(userID), s.epochKey(userID)},
		[]string{s.now(), oldHash, newHash, s.idle})
	sess, _, err := decodeReply(res, userID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", Session{}, err
		}
		return "", Session{}, fail("rotate", err)
	}
	s.metrics.rotations.Inc()
	return next, sess, nil
}

// fail wraps a Redis failure without its text reaching a client: callers
// get ErrUnavailable (errors.Is) or a generic store error.
func fail(op string, err error) error {
	switch {
	case errors.Is(err, redisx.ErrUnavailable):
		return fmt.Errorf("session: %s: %w", op, err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Errorf("session: %s: %w: %w", op, redisx.ErrUnavailable, err)
	}
	return fmt.Errorf("session: %s: %w", op, err)
}

// failKind is the lookups' result label of a failure: out_of_memory
// (Redis full: redisx.ErrOutOfMemory), unavailable, or error.
func failKind(err error) string {
	switch {
	case errors.Is(err, redisx.ErrOutOfMemory):
		return "out_of_memory"
	case errors.Is(err, redisx.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return "unavailable"
	}
	return "error"
}
