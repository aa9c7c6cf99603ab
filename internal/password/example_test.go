package password_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/theaterscriptpro/tsp/internal/password"
)

func Example() {
	encoded, err := password.Hash("correct horse battery staple")
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.HasPrefix(encoded, "$argon2id$v=19$m=19456,t=2,p=1$"))

	ok, err := password.Verify("correct horse battery staple", encoded)
	fmt.Println(ok, err)
	ok, err = password.Verify("Tr0ub4dor&3", encoded)
	fmt.Println(ok, err)
	// Output:
	// true
	// true <nil>
	// false <nil>
}

// Sign-in looks the user up first; when there is none it still spends the
// time of a password check, so timing does not tell which emails exist.
func ExampleVerifyDummy() {
	hashes := map[string]string{} // email -> stored hash; empty: no such user
	signIn := func(email, pw string) bool {
		h, found := hashes[email]
		if !found {
			password.VerifyDummy(pw)
			return false
		}
		ok, err := password.Verify(pw, h)
		return ok && err == nil
	}
	fmt.Println(signIn("nobody@example.org", "whatever1"))
	// Output: false
}

// A server hashes through one Gate: at most its memory budget of argon2id
// at once, and ErrBusy (a 503) for a hash that finds no room in time.
func ExampleGate() {
	gate, err := password.NewGate(password.GateConfig{}) // 76 MiB: four hashes at once
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	encoded, err := gate.Hash(ctx, "correct horse battery staple")
	if err != nil {
		panic(err)
	}
	ok, err := gate.Verify(ctx, "correct horse battery staple", encoded)
	if errors.Is(err, password.ErrBusy) {
		fmt.Println("503: retry shortly")
		return
	}
	fmt.Println(ok, err, gate.Computed(), gate.PeakKiB() <= password.DefaultGateMemory)
	// Output: true <nil> 2 true
}
