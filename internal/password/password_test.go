package password

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// fast keeps the unit tests quick; the defaults are exercised by TestDefaults
// and the benchmark.
var fast = Params{Memory: 64, Iterations: 1}

func TestHashVerify(t *testing.T) {
	tests := []struct {
		name, password, attempt string
		want                    bool
	}{
		{"match", "correct horse", "correct horse", true},
		{"wrong", "correct horse", "correct horsf", false},
		{"case matters", "Correct Horse", "correct horse", false},
		{"trailing space matters", "correct horse", "correct horse ", false},
		{"unicode", "pässwörd 🎭 ключ", "pässwörd 🎭 ключ", true},
		{"empty attempt", "correct horse", "", false},
		{"NUL inside", "abc\x00defgh", "abc\x00defgh", true},
		{"NUL truncation is no match", "abc\x00defgh", "abc", false},
		{"max length", strings.Repeat("🎭", 128), strings.Repeat("🎭", 128), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := fast.Hash(tt.password)
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			got, err := Verify(tt.attempt, enc)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != tt.want {
				t.Errorf("Verify(%q, Hash(%q)) = %v, want %v", tt.attempt, tt.password, got, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	enc, err := Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(enc, want) {
		t.Errorf("Hash = %q, want prefix %q", enc, want)
	}
	parts := strings.Split(enc, "$")
	if got, want := len(parts[4]), 22; got != want { // 16 bytes unpadded
		t.Errorf("salt length %d chars, want %d", got, want)
	}
	if got, want := len(parts[5]), 43; got != want { // 32 bytes unpadded
		t.Errorf("hash length %d chars, want %d", got, want)
	}
	enc2, _ := Hash("correct horse")
	if enc == enc2 {
		t.Error("two hashes of one password are equal: salt is not random")
	}
	if ok, err := Verify("correct horse", enc); !ok || err != nil {
		t.Errorf("Verify = %v, %v, want true, nil", ok, err)
	}
	if (Params{}).NeedsRehash(enc) {
		t.Error("NeedsRehash(default hash) = true, want false")
	}
	if !(Params{Memory: 65536}).NeedsRehash(enc) {
		t.Error("NeedsRehash with more memory = false, want true")
	}
	if !(Params{}).NeedsRehash("garbage") {
		t.Error("NeedsRehash(garbage) = false, want true")
	}
}

// TestReferenceVectors checks hashes made by the reference implementation's
// command-line tool (Debian package argon2), so our encoding and parameters
// interoperate, not just round-trip with ourselves.
func TestReferenceVectors(t *testing.T) {
	tests := []struct{ password, encoded string }{
		// echo -n "correct horse" | argon2 saltsaltsalt -id -t 2 -k 19456 -p 1 -l 32 -e
		{"correct horse", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$sDq4SJydHwxWnLTlXqq5ZzNDfmXrJUlaeTohxQaFrio"},
		// echo -n "password" | argon2 somesaltsomesalt -id -t 3 -m 12 -p 2 -l 16 -e
		{"password", "$argon2id$v=19$m=4096,t=3,p=2$c29tZXNhbHRzb21lc2FsdA$pPiHGu4ujL7DtHdGlUB17Q"},
	}
	for _, tt := range tests {
		t.Run(tt.password, func(t *testing.T) {
			if ok, err := Verify(tt.password, tt.encoded); !ok || err != nil {
				t.Errorf("Verify(right) = %v, %v, want true, nil", ok, err)
			}
			if ok, err := Verify(tt.password+"x", tt.encoded); ok || err != nil {
				t.Errorf("Verify(wrong) = %v, %v, want false, nil", ok, err)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	const salt, key = "c2FsdHNhbHRzYWx0", "sDq4SJydHwxWnLTlXqq5ZzNDfmXrJUlaeTohxQaFrio"
	tests := []struct{ name, encoded string }{
		{"empty", ""},
		{"plain text", "correct horse"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"no leading dollar", "argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"missing version", "$argon2id$m=19456,t=2,p=1$" + salt + "$" + key},
		{"old version", "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key},
		{"extra field", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "$x"},
		{"params reordered", "$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + key},
		{"param missing", "$argon2id$v=19$m=19456,t=2$" + salt + "$" + key},
		{"param extra", "$argon2id$v=19$m=19456,t=2,p=1,k=3$" + salt + "$" + key},
		{"m zero", "$argon2id$v=19$m=0,t=2,p=1$" + salt + "$" + key},
		{"m below 8p", "$argon2id$v=19$m=15,t=2,p=2$" + salt + "$" + key},
		{"m huge", "$argon2id$v=19$m=4294967295,t=2,p=1$" + salt + "$" + key},
		{"m overflow", "$argon2id$v=19$m=99999999999999999999,t=2,p=1$" + salt + "$" + key},
		{"m negative", "$argon2id$v=19$m=-1,t=2,p=1$" + salt + "$" + key},
		{"m plus sign", "$argon2id$v=19$m=+19456,t=2,p=1$" + salt + "$" + key},
		{"m leading zero", "$argon2id$v=19$m=019456,t=2,p=1$" + salt + "$" + key},
		{"m hex", "$argon2id$v=19$m=0x4c00,t=2,p=1$" + salt + "$" + key},
		{"t zero", "$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key},
		{"t huge", "$argon2id$v=19$m=19456,t=1000000,p=1$" + salt + "$" + key},
		{"p zero", "$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key},
		{"p 256 wraps uint8", "$argon2id$v=19$m=19456,t=2,p=256$" + salt + "$" + key},
		{"empty salt", "$argon2id$v=19$m=19456,t=2,p=1$$" + key},
		{"short salt", "$argon2id$v=19$m=19456,t=2,p=1$YWJj$" + key},
		{"salt not base64", "$argon2id$v=19$m=19456,t=2,p=1$!!!!!!!!!!!!!!!!$" + key},
		{"salt padded", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0YQ==$" + key},
		{"empty hash", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$"},
		{"short hash", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$YWJjZGVm"},
		{"hash url alphabet", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$sDq4SJydHwxWnLTlXqq5ZzNDfmXrJUlaeTohxQaFri_"},
		{"huge string", "$argon2id$v=19$m=19456,t=2,p=1$" + strings.Repeat("A", 100000) + "$" + key},
		{"NUL", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "\x00$" + key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			ok, err := Verify("correct horse", tt.encoded)
			if ok {
				t.Fatalf("Verify(%q) = true, want false", tt.encoded)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Verify(%q) error = %v, want ErrMalformed", tt.encoded, err)
			}
			// A hostile encoding must be refused before any hashing work.
			if d := time.Since(start); d > 50*time.Millisecond {
				t.Errorf("Verify took %v on a malformed encoding, want it refused at once", d)
			}
		})
	}
}

func TestTooLong(t *testing.T) {
	long := strings.Repeat("x", MaxLen+1)
	if _, err := fast.Hash(long); !errors.Is(err, ErrTooLong) {
		t.Errorf("Hash(long) error = %v, want ErrTooLong", err)
	}
	enc, _ := fast.Hash("short one")
	if ok, err := Verify(long, enc); ok || !errors.Is(err, ErrTooLong) {
		t.Errorf("Verify(long) = %v, %v, want false, ErrTooLong", ok, err)
	}
	fast.VerifyDummy(long) // must not panic
}

// TestVerifyDummyCost checks that VerifyDummy costs about what a failed
// Verify costs with the same parameters: within a factor of two either way
// (generous, so a busy CI machine does not make it flaky, yet far tighter
// than the >100x gap of skipping the hash).
func TestVerifyDummyCost(t *testing.T) {
	p := Params{Memory: 8192, Iterations: 2}
	enc, err := p.Hash("the real one")
	if err != nil {
		t.Fatal(err)
	}
	measure := func(f func()) time.Duration {
		best := time.Duration(1 << 62)
		for i := 0; i < 7; i++ {
			start := time.Now()
			f()
			best = min(best, time.Since(start))
		}
		return best
	}
	wrong := measure(func() { _, _ = Verify("a wrong one", enc) })
	dummy := measure(func() { p.VerifyDummy("a wrong one") })
	if ratio := float64(dummy) / float64(wrong); ratio < 0.5 || ratio > 2 {
		t.Errorf("VerifyDummy took %v, a failed Verify %v (ratio %.2f), want about equal", dummy, wrong, ratio)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("correct horse", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$sDq4SJydHwxWnLTlXqq5ZzNDfmXrJUlaeTohxQaFrio")
	f.Add("", "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("x", "$$$$$")
	f.Fuzz(func(t *testing.T, password, encoded string) {
		// Keep each run cheap: the fuzzer explores the parser, not argon2.
		if strings.Contains(encoded, "m=") && !strings.Contains(encoded, "m=8,") {
			if _, err := decode(encoded); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		ok, err := Verify(password, encoded)
		if ok && err != nil {
			t.Fatalf("Verify = true with error %v", err)
		}
	})
}

func BenchmarkHash(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := Hash("correct horse battery staple"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	enc, err := Hash("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if ok, _ := Verify("correct horse battery staple", enc); !ok {
			b.Fatal("no match")
		}
	}
}
