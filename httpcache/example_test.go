package httpcache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/theaterscriptpro/tsp/httpcache"
	"github.com/theaterscriptpro/tsp/redisx"
)

// The original guide's cache({ttl: 600, keyGenerator:
// cacheKeyGenerators.resource('script', 'id')}) and
// invalidateCache(['scripts:*', 'script:*']) on a ServeMux.
func Example() {
	ctx := context.Background()
	rdb, err := redisx.New(ctx, redisx.Config{Addrs: []string{"127.0.0.1:6379"}, KeyPrefix: "example:httpcache:"})
	if err != nil {
		panic(err)
	}
	defer rdb.Close()
	hc, err := httpcache.New(rdb, httpcache.Config{CredentialCookies: []string{"tsp_session"}})
	if err != nil {
		panic(err)
	}
	defer hc.Close()

	title := "Hamlet"
	mux := http.NewServeMux()
	mux.Handle("GET /api/scripts/{id}", hc.Middleware(httpcache.Route{
		TTL: 10 * time.Minute, Key: httpcache.Resource("script", "id"), Public: true,
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"title":%q}`, r.PathValue("id"), title)
	})))
	mux.Handle("GET /api/scripts", hc.Middleware(httpcache.Route{
		TTL: 5 * time.Minute, Key: httpcache.List("scripts", "page", "limit", "genre", "q", "author"), Public: true,
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"items":[{"title":%q}]}`, title)
	})))
	mux.Handle("PUT /api/scripts/{id}", hc.InvalidatePatternsMiddleware("script:{id}", "scripts:*")(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			title = "Hamlet, revised"
			w.WriteHeader(http.StatusNoContent)
		})))

	show := func(method string) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(method, "/api/scripts/1", nil))
		body, _ := io.ReadAll(w.Body)
		fmt.Println(strings.TrimSpace(fmt.Sprint(method, " ", w.Code, " ", w.Header().Get("X-Cache"), " ", string(body))))
	}
	show("GET")
	show("GET")
	show("PUT")
	show("GET")
	_ = hc.InvalidatePatterns(ctx, "script:*", "scripts:*") // leave nothing behind
	// Output:
	// GET 200 MISS {"id":"1","title":"Hamlet"}
	// GET 200 HIT {"id":"1","title":"Hamlet"}
	// PUT 204
	// GET 200 MISS {"id":"1","title":"Hamlet, revised"}
}
