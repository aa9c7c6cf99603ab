// Package password hashes and verifies passwords with argon2id, storing them
// in the PHC string format that other argon2 implementations read:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// (salt and hash in unpadded standard base64). The parameters travel with
// each hash, so raising them later leaves old hashes verifiable; NeedsRehash
// tells when to upgrade one at the next sign-in.
//
//	encoded, err := password.Hash("correct horse battery staple") // OWASP's defaults
//	ok, err := password.Verify("correct horse battery staple", encoded)
//
// Sign-in with an unknown email should call VerifyDummy, which costs the same
// time as a wrong password, so response times do not reveal which emails have
// accounts.
//
// A server hashes through a Gate, which bounds the argon2id memory held at
// once (19 MiB per default hash), so a burst of sign-ins cannot exhaust it:
//
//	gate, err := password.NewGate(password.GateConfig{}) // 76 MiB, 1s wait
//	ok, err := gate.Verify(ctx, pw, encoded)             // ErrBusy: answer 503
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters. A zero field means its default.
type Params struct {
	// Memory in KiB. The default value is 19456 (19 MiB), OWASP's
	// recommended minimum for argon2id.
	Memory uint32
	// Iterations (time cost). The default value is 2.
	Iterations uint32
	// Parallelism (lanes). The default value is 1: a web server hashes many
	// passwords at once, so one lane per hash uses the cores best.
	Parallelism uint8
	// SaltLen in bytes. The default value is 16.
	SaltLen uint32
	// KeyLen, the hash length in bytes. The default value is 32.
	KeyLen uint32
}

// Defaults and bounds.
const (
	DefaultMemory      = 19456
	DefaultIterations  = 2
	DefaultParallelism = 1
	DefaultSaltLen     = 16
	DefaultKeyLen      = 32

	// Verify refuses encodings beyond these bounds before doing any work:
	// a hash string comes from the database, and a corrupted or planted one
	// must not make a sign-in allocate gigabytes or run for minutes.
	maxMemory      = 1 << 20 // 1 GiB in KiB
	maxIterations  = 100
	maxParallelism = 64
	minSaltLen     = 8
	maxSaltLen     = 64
	minKeyLen      = 16
	maxKeyLen      = 128
	maxEncodedLen  = 512
)

// ErrMalformed is returned (wrapped) by Verify for an encoding it cannot
// parse or whose parameters are out of bounds.
var ErrMalformed = errors.New("password: malformed argon2id hash")

// ErrTooLong is returned by Hash and Verify for a password over MaxLen bytes;
// the domain limits passwords to 128 characters, and this bound keeps the
// hashing input small whatever a caller forgot to check.
var ErrTooLong = errors.New("password: password too long")

// MaxLen is the longest password in bytes that Hash and Verify accept: 128
// characters of up to 4 bytes each.
const MaxLen = 512

// withDefaults returns p with its zero fields set to their defaults.
func (p Params) withDefaults() Params {
	if p.Memory == 0 {
		p.Memory = DefaultMemory
	}
	if p.Iterations == 0 {
		p.Iterations = DefaultIterations
	}
	if p.Parallelism == 0 {
		p.Parallelism = DefaultParallelism
	}
	if p.SaltLen == 0 {
		p.SaltLen = DefaultSaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = DefaultKeyLen
	}
	return p
}

// Hash returns the PHC-format argon2id hash of password with the default
// parameters and a fresh random salt.
func Hash(password string) (string, error) { return Params{}.Hash(password) }

// Verify reports whether password matches encoded, comparing in constant
// time. It uses the parameters stored in encoded, so hashes made with older
// parameters still verify. A malformed or out-of-bounds encoding is an error
// wrapping ErrMalformed: never a panic, never a match.
func Verify(password, encoded string) (bool, error) {
	if len(password) > MaxLen {
		return false, ErrTooLong
	}
	d, err := decode(encoded)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), d.salt, d.p.Iterations, d.p.Memory, d.p.Parallelism, uint32(len(d.key)))
	return subtle.ConstantTimeCompare(key, d.key) == 1, nil
}

// VerifyDummy does the work of Verify against a hash made with the default
// parameters, and reports nothing. Call it when no account matches an email,
// so that "no such user" and "wrong password" take the same time.
func VerifyDummy(password string) { Params{}.VerifyDummy(password) }

// Hash returns the PHC-format argon2id hash of password with p (zero fields
// defaulted) and a fresh random salt.
func (p Params) Hash(password string) (string, error) {
	if len(password) > MaxLen {
		return "", ErrTooLong
	}
	p = p.withDefaults()
	salt := make([]byte, p.SaltLen)
	_, _ = rand.Read(salt) // never fails; see crypto/rand.Read
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Parallelism,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// VerifyDummy spends the time Verify spends on a hash made with p, and
// reports nothing. It derives a key from a fixed salt and compares it in
// constant time, exactly as Verify does, so the two cannot be told apart by
// timing.
func (p Params) VerifyDummy(password string) {
	if len(password) > MaxLen {
		password = password[:MaxLen] // Verify refuses these before hashing anyway
	}
	p = p.withDefaults()
	salt := make([]byte, p.SaltLen)
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	subtle.ConstantTimeCompare(key, make([]byte, len(key)))
}

// NeedsRehash reports whether encoded was made with parameters other than p
// (zero fields defaulted), or cannot be parsed, so that the caller can store
// a fresh hash after a successful sign-in when the parameters are raised.
func (p Params) NeedsRehash(encoded string) bool {
	p = p.withDefaults()
	d, err := decode(encoded)
	if err != nil {
		return true
	}
	return d.p.Memory != p.Memory || d.p.Iterations != p.Iterations ||
		d.p.Parallelism != p.Parallelism || uint32(len(d.salt)) != p.SaltLen ||
		uint32(len(d.key)) != p.KeyLen
}

type decoded struct {
	p         Params
	salt, key []byte
}

func malformed(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }

// decode parses "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH" strictly: exact field
// order, decimal numbers without signs or leading zeros, bounded values.
func decode(s string) (decoded, error) {
	var d decoded
	if len(s) > maxEncodedLen {
		return d, malformed("too long")
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return d, malformed("want 5 $-separated fields")
	}
	if parts[1] != "argon2id" {
		return d, malformed("algorithm is not argon2id")
	}
	v, ok := strings.CutPrefix(parts[2], "v=")
	if !ok {
		return d, malformed("missing version")
	}
	if n, err := num(v, 0xff); err != nil || n != argon2.Version {
		return d, malformed("unsupported version")
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return d, malformed("want m,t,p parameters")
	}
	var vals [3]uint64
	for i, name := range [3]string{"m=", "t=", "p="} {
		s, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return d, malformed("want parameter " + name[:1])
		}
		n, err := num(s, maxMemory)
		if err != nil {
			return d, malformed("bad parameter " + name[:1])
		}
		vals[i] = n
	}
	d.p.Memory, d.p.Iterations = uint32(vals[0]), uint32(vals[1])
	if vals[2] < 1 || vals[2] > maxParallelism {
		return d, malformed("parallelism out of range")
	}
	d.p.Parallelism = uint8(vals[2])
	if d.p.Iterations < 1 || d.p.Iterations > maxIterations {
		return d, malformed("iterations out of range")
	}
	// argon2 needs at least 8 KiB per lane.
	if d.p.Memory < 8*uint32(d.p.Parallelism) || d.p.Memory > maxMemory {
		return d, malformed("memory out of range")
	}
	var err error
	if d.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(d.salt) < minSaltLen || len(d.salt) > maxSaltLen {
		return d, malformed("bad salt")
	}
	if d.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(d.key) < minKeyLen || len(d.key) > maxKeyLen {
		return d, malformed("bad hash")
	}
	return d, nil
}

// num parses a canonical decimal in [0, max].
func num(s string, max uint64) (uint64, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, ErrMalformed
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrMalformed
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, ErrMalformed
	}
	return n, nil
}
