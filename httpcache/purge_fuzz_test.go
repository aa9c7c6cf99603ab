package httpcache

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
)

// The purge and epoch paths under random interleavings of stores and
// purges on two instances sharing one Redis. Each input is a program of
// two-byte steps: read a key on an instance, start a miss whose handler
// reads the "database" and then stops before its store, let a stopped miss
// store, or write (change the data, then purge) through an instance. After
// a purge returns, the writing instance never serves data older than what
// it purged, and the other instance stops within API.md's 100 ms.
func FuzzPurgeInterleavings(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzPurgeInterleavings: stores
	// that land after the purge of the data they read, on each instance and
	// for each kind of key, and random programs.
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 128 {
			prog = prog[:128] // a bounded run per input
		}
		runPurgeProgram(t, prog)
	})
}

// fuzzKeys are the entries the programs touch: three scripts and two list
// pages. A write of script i changes it and every list page.
var fuzzKeys = []string{"/s/0", "/s/1", "/s/2", "/l?page=1", "/l?page=2"}

const fuzzScripts = 3

type fuzzDB struct {
	mu      sync.Mutex
	version [5]int64
	park    [5]chan struct{} // set: the next handler run of that key stops on it
	parked  [5]chan struct{} // closed when that handler has read the database
}

func (db *fuzzDB) handler(key int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db.mu.Lock()
		v := db.version[key]
		park, parked := db.park[key], db.parked[key]
		db.park[key] = nil
		db.mu.Unlock()
		if park != nil {
			close(parked)
			<-park
		}
		fmt.Fprintf(w, "v=%d", v)
	})
}

// requirement is what one purge requires of later reads of a key.
type requirement struct {
	version int64
	by      int
	at      time.Time
}

func runPurgeProgram(t *testing.T, prog []byte) {
	cfg := redistest.Config(t)
	db := &fuzzDB{}
	var caches [2]*Cache
	var muxes [2]*http.ServeMux
	for i := range caches {
		caches[i] = newCache(t, redistest.Connect(t, cfg), Config{})
		mux := http.NewServeMux()
		mux.Handle("GET /s/{id}", caches[i].Middleware(Route{Key: Resource("script", "id"), Public: true})(
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				k := int(r.PathValue("id")[0] - '0')
				db.handler(k).ServeHTTP(w, r)
			})))
		mux.Handle("GET /l", caches[i].Middleware(Route{Key: List("scripts", "page"), Public: true})(
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				k := fuzzScripts + int(r.URL.Query().Get("page")[0]-'1')
				db.handler(k).ServeHTTP(w, r)
			})))
		muxes[i] = mux
	}
	// A stopped miss: its request, and the channel that lets its handler
	// go on.
	type pending struct {
		park chan struct{}
		done chan *httptest.ResponseRecorder
	}
	var inflight [5]*pending
	marks := make([][]requirement, len(fuzzKeys))

	check := func(inst, key int, w *httptest.ResponseRecorder, started time.Time) {
		t.Helper()
		v := versionOf(t, w)
		for _, m := range marks[key] {
			if v >= m.version || !started.After(m.at) {
				continue
			}
			if m.by == inst {
				t.Fatalf("instance %d served %s v=%d (%s) after its own purge of v<%d returned", inst, fuzzKeys[key], v, w.Header().Get("Cache-Status"), m.version)
			}
			if lag := started.Sub(m.at); lag > 100*time.Millisecond {
				t.Fatalf("instance %d served %s v=%d (%s) %v after instance %d's purge returned; want at most 100ms",
					inst, fuzzKeys[key], v, w.Header().Get("Cache-Status"), lag, m.by)
			}
		}
	}
	// start runs a GET of key on inst; with park, its handler (if it runs)
	// stops after reading the database. It returns once the request is
	// done or its handler has stopped.
	start := func(inst, key int, park bool) {
		p := &pending{done: make(chan *httptest.ResponseRecorder, 1)}
		parked := make(chan struct{})
		if park {
			p.park = make(chan struct{})
			db.mu.Lock()
			db.park[key], db.parked[key] = p.park, parked
			db.mu.Unlock()
		}
		began := time.Now()
		go func() {
			w := httptest.NewRecorder()
			muxes[inst].ServeHTTP(w, httptest.NewRequest(http.MethodGet, fuzzKeys[key], nil))
			p.done <- w
		}()
		select {
		case <-parked:
			inflight[key] = p
		case w := <-p.done:
			db.mu.Lock()
			db.park[key] = nil // served without the handler
			db.mu.Unlock()
			check(inst, key, w, began)
		}
	}
	// release lets key's stopped miss store; its response holds what it
	// read before, which is not checked: it started before the purge.
	release := func(key int) {
		p := inflight[key]
		inflight[key] = nil
		close(p.park)
		<-p.done
	}
	defer func() {
		for k := range inflight {
			if inflight[k] != nil {
				release(k)
			}
		}
		if t.Failed() {
			return
		}
		// Every purge has now reached both instances: each serves at least
		// what the last purge of each key required, the other instance
		// within 100 ms of that purge's return.
		for key, ms := range marks {
			if len(ms) == 0 {
				continue
			}
			last := ms[len(ms)-1]
			for inst := range muxes {
				for {
					began := time.Now()
					w := get(t, muxes[inst], fuzzKeys[key])
					if versionOf(t, w) >= last.version {
						break
					}
					check(inst, key, w, began)
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()

	for i := 0; i+1 < len(prog); i += 2 {
		op, arg := prog[i]%4, int(prog[i+1])
		opStart := time.Now()
		inst, key := arg&1, (arg>>1)%len(fuzzKeys)
		switch op {
		case 0, 1: // read, or start a miss that stops before its store
			if inflight[key] != nil {
				continue // its lease would hold this read for up to a second
			}
			start(inst, key, op == 1)
		case 2: // the stopped miss of key stores now
			if inflight[key] == nil {
				continue
			}
			release(key)
		case 3: // write: change the data, then purge through inst
			tags := []string{NamespaceTag("scripts:list")}
			changed := []int{fuzzScripts, fuzzScripts + 1}
			if s := (arg >> 1) % (fuzzScripts + 1); s < fuzzScripts {
				tags = append(tags, ResourceTag("script", fmt.Sprint(s)))
				changed = append(changed, s)
			}
			db.mu.Lock()
			for _, k := range changed {
				db.version[k]++
			}
			db.mu.Unlock()
			if err := caches[inst].Invalidate(context.Background(), tags...); err != nil {
				t.Fatal(err)
			}
			at := time.Now()
			db.mu.Lock()
			for _, k := range changed {
				marks[k] = append(marks[k], requirement{version: db.version[k], by: inst, at: at})
			}
			db.mu.Unlock()
		}
		if d := time.Since(opStart); d > 200*time.Millisecond {
			t.Logf("step %d (op %d arg %d) took %v", i/2, op, arg, d)
		}
	}
}
