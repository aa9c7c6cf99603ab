package session_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/theaterscriptpro/tsp/redisx"
	"github.com/theaterscriptpro/tsp/session"
)

// exampleRedis connects to the Redis the tests use (REDIS_URL, else
// localhost:6379) under a throwaway key prefix.
func exampleRedis() *redisx.Client {
	cfg := redisx.Config{Addrs: []string{"127.0.0.1:6379"}}
	if u := os.Getenv("REDIS_URL"); u != "" {
		var err error
		if cfg, err = redisx.ParseURL(u); err != nil {
			panic(err)
		}
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg.KeyPrefix = "example:" + hex.EncodeToString(b) + ":"
	rdb, err := redisx.New(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	return rdb
}

func ExampleStore() {
	ctx := context.Background()
	rdb := exampleRedis()
	defer rdb.Close()
	store, err := session.NewStore(rdb, session.Config{}) // 24h idle, 7 days absolute
	if err != nil {
		panic(err)
	}

	// The original guide's SessionService.create(userId, email, role).
	token, s, err := store.Create(ctx, session.NewSession{UserID: "u1", Email: "ann@example.com", Role: "producer"})
	if err != nil {
		panic(err)
	}
	got, err := store.Touch(ctx, token) // get, counting as activity
	fmt.Println(got.Email, got.ID == s.ID, err)

	// Rotate on a privilege change: the old token stops working at once.
	newToken, _, _ := store.Rotate(ctx, token)
	_, err = store.Get(ctx, token)
	fmt.Println("old token:", err)

	// deleteUserSessions(userId): sign out everywhere.
	n, _ := store.DeleteAll(ctx, "u1", "")
	_, err = store.Get(ctx, newToken)
	fmt.Println("ended:", n, err)
	// Output:
	// ann@example.com true <nil>
	// old token: session: not found
	// ended: 1 session: not found
}

func ExampleManager() {
	ctx := context.Background()
	rdb := exampleRedis()
	defer rdb.Close()
	store, _ := session.NewStore(rdb, session.Config{})
	mgr, err := session.NewManager(store, session.ManagerConfig{})
	if err != nil {
		panic(err)
	}
	me := mgr.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _, _ := session.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", s.Email)
	}))

	// Sign-in: after the password checked out, start a session and set the cookie.
	w := httptest.NewRecorder()
	_, _, err = mgr.SignIn(w, httptest.NewRequest("POST", "/api/auth/login", nil),
		session.NewSession{UserID: "u1", Email: "ann@example.com"})
	if err != nil {
		panic(err)
	}
	cookie := w.Result().Cookies()[0]
	fmt.Println(cookie.Name, cookie.HttpOnly, cookie.SameSite == http.SameSiteLaxMode)

	r := httptest.NewRequest("GET", "/api/me", nil)
	r.AddCookie(cookie)
	w = httptest.NewRecorder()
	me.ServeHTTP(w, r)
	fmt.Println(w.Code, w.Body)

	w = httptest.NewRecorder()
	me.ServeHTTP(w, httptest.NewRequest("GET", "/api/me", nil))
	fmt.Println(w.Code, w.Header().Get("Content-Type"))

	_, _ = store.DeleteAll(ctx, "u1", "")
	// Output:
	// tsp_session true true
	// 200 hello ann@example.com
	// 401 application/problem+json
}
