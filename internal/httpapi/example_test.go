package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/theaterscriptpro/tsp/internal/httpapi"
	"github.com/theaterscriptpro/tsp/internal/sqlstore"
	"github.com/theaterscriptpro/tsp/redisx"
)

// Example serves the API on a fresh SQLite file and a Redis at
// 127.0.0.1:6379 (New works even if Redis is down: it reconnects).
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "httpapi-example")
	defer os.RemoveAll(dir)
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "theater.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	rdb, err := redisx.New(ctx, redisx.Config{Addrs: []string{"127.0.0.1:6379"}, KeyPrefix: "example:"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rdb.Close()
	api, err := httpapi.New(httpapi.Deps{Redis: rdb, Users: st, Scripts: st, Licenses: st, Database: st})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer api.Close(ctx)

	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest("GET", "/api/scripts/not-an-id", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	// Output: 404 application/problem+json
}
