package demo_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/demo"
	"github.com/theaterscriptpro/tsp/internal/password"
	"github.com/theaterscriptpro/tsp/internal/sqlstore/sqlstoretest"
	"github.com/theaterscriptpro/tsp/internal/theater"
)

func ctxT(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

func TestLoad(t *testing.T) {
	for _, b := range sqlstoretest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st := b.Open(t)
			ctx := ctxT(t)
			start := time.Now()
			res, err := demo.Load(ctx, st, 0)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			t.Logf("loaded %d scripts in %v", res.Scripts, time.Since(start))
			if !res.Created || res.Scripts != demo.DefaultScripts || len(res.Users) < 3 {
				t.Fatalf("Load = %+v, want created, %d scripts and the demo users", res, demo.DefaultScripts)
			}
			p, err := st.ListScripts(ctx, theater.ScriptFilter{})
			total := p.Total
			if err != nil || total != demo.DefaultScripts {
				t.Fatalf("ListScripts total = %d, %v, want %d", total, err, demo.DefaultScripts)
			}
			for _, g := range []string{"comedy", "drama", "tragedy"} {
				if p, _ := st.ListScripts(ctx, theater.ScriptFilter{Genre: g}); p.Total == 0 {
					t.Errorf("no %s in the demo catalogue", g)
				}
			}

			// Idempotent: a second run finds the catalogue and adds nothing.
			again, err := demo.Load(ctx, st, 0)
			if err != nil {
				t.Fatalf("second Load: %v", err)
			}
			if again.Created || again.Scripts != 0 || again.Users[0] != res.Users[0] {
				t.Errorf("second Load = %+v, want nothing created and the same users", again)
			}
			if p, _ := st.ListScripts(ctx, theater.ScriptFilter{}); p.Total != demo.DefaultScripts {
				t.Errorf("after second Load total = %d, want %d", p.Total, demo.DefaultScripts)
			}

			// The demo password signs in.
			u, hash, err := st.UserByEmail(ctx, res.Users[0].Email)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := password.Verify(demo.Password, hash); !ok || err != nil {
				t.Errorf("Verify(demo password) = %v, %v, want true", ok, err)
			}
			if u.Role != theater.RolePlaywright {
				t.Errorf("first demo user role = %q, want playwright", u.Role)
			}
		})
	}
}

// TestLoadConcurrently starts two loads at once, as two instances started
// with -demo would: one catalogue, no error.
func TestLoadConcurrently(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = demo.Load(ctx, st, 200) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Load %d: %v", i, err)
		}
	}
	// Both may have seen an empty catalogue before either inserted; the
	// point is that nothing failed and the data is whole.
	if p, _ := st.ListScripts(ctx, theater.ScriptFilter{}); p.Total != 200 && p.Total != 400 {
		t.Errorf("total = %d, want 200 (or 400 if both raced past the check)", p.Total)
	}
}

func TestScriptsDeterministicAndValid(t *testing.T) {
	authors := []theater.User{{ID: theater.NewID(), Name: "A"}, {ID: theater.NewID(), Name: "B"}}
	a, b := demo.Scripts(500, authors), demo.Scripts(500, authors)
	if len(a) != 500 {
		t.Fatalf("len = %d, want 500", len(a))
	}
	titles := map[string]bool{}
	for i := range a {
		x, y := a[i], b[i]
		x.ID, y.ID = "", ""
		if x != y {
			t.Fatalf("script %d differs between runs: %+v vs %+v", i, x, y)
		}
		in := theater.ScriptInput{Title: a[i].Title, Genre: a[i].Genre, Synopsis: a[i].Synopsis, CastMin: a[i].CastMin,
			CastMax: a[i].CastMax, DurationMinutes: a[i].DurationMinutes, Language: a[i].Language}
		before := in
		if err := in.Validate(); err != nil || in != before {
			t.Fatalf("script %d %+v: Validate = %v (normalised %+v), want valid as is", i, before, err, in)
		}
		if i > 0 && !a[i].CreatedAt.After(a[i-1].CreatedAt) {
			t.Fatalf("script %d created at %v, not after script %d", i, a[i].CreatedAt, i-1)
		}
		if a[i].AuthorID != authors[i%2].ID {
			t.Fatalf("script %d author %q, want round-robin", i, a[i].AuthorID)
		}
		titles[a[i].Title] = true
	}
	if len(titles) < 300 {
		t.Errorf("only %d distinct titles in 500 scripts, want variety", len(titles))
	}
	if got := demo.Scripts(10, nil); got != nil {
		t.Errorf("Scripts with no authors = %v, want nil", got)
	}
	if slices.ContainsFunc(a, func(s theater.Script) bool { return s.CreatedAt.After(time.Now()) }) {
		t.Error("a demo script is dated in the future")
	}
}

func TestLoadRejectsHugeN(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	_, err := demo.Load(ctxT(t), st, demo.MaxScripts+1)
	if theater.ErrorCode(err) != theater.EINVALID {
		t.Errorf("Load(huge) error = %v, want EINVALID", err)
	}
}

func BenchmarkLoad(b *testing.B) {
	for _, be := range sqlstoretest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				st := be.Open(b)
				b.StartTimer()
				if _, err := demo.Load(context.Background(), st, demo.DefaultScripts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLoadWithBatches loads more than one batch and reports each.
func TestLoadWithBatches(t *testing.T) {
	st := sqlstoretest.SQLite(t)
	ctx := ctxT(t)
	var progress strings.Builder
	n := 2*500 + 5
	res, err := demo.LoadWith(ctx, st, demo.Options{Scripts: n, Progress: &progress, BatchSize: 500})
	if err != nil || !res.Created || res.Scripts != n {
		t.Fatalf("LoadWith = %+v, %v, want %d scripts created", res, err, n)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], fmt.Sprintf("demo: %d/%d scripts (100%%)", n, n)) {
		t.Errorf("progress = %q, want 3 lines ending at %d/%d", progress.String(), n, n)
	}
	if p, _ := st.ListScripts(ctx, theater.ScriptFilter{}); p.Total != n || !p.TotalExact {
		t.Errorf("total = %d exact %v, want %d", p.Total, p.TotalExact, n)
	}
	// The batches are Scripts(n) cut up: the newest script is the n-th.
	want := demo.Scripts(n, res.Users[:5])[n-1]
	p, _ := st.ListScripts(ctx, theater.ScriptFilter{Limit: 1})
	if len(p.Items) != 1 || p.Items[0].Title != want.Title || !p.Items[0].CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("newest = %+v, want %q at %v", p.Items, want.Title, want.CreatedAt)
	}
	if _, err := demo.LoadWith(ctx, sqlstoretest.SQLite(t), demo.Options{Scripts: demo.MaxScripts + 1}); theater.ErrorCode(err) != theater.EINVALID {
		t.Errorf("LoadWith(MaxScripts+1) = %v, want EINVALID", err)
	}
}
