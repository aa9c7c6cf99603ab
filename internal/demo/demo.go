// Package demo fills a store with a plausible catalogue: a few playwrights
// and, by default, 3,000 scripts whose titles, genres and synopses come from
// word lists. The content is deterministic (a fixed seed), so every demo
// database looks the same and screenshots and load tests are comparable.
// The server calls it for `theaterd -demo`:
//
//	st, _ := sqlstore.Open(ctx, "sqlite:./data/theater.db")
//	res, err := demo.Load(ctx, st, 0) // 0: DefaultScripts
//	// res.Created is false when the catalogue was already there.
//
// Load is idempotent: it recognises its own demo users by email and adds no
// scripts when the first of them already has some. A large catalogue (up
// to a million scripts, for load tests of the lists) goes in through
// LoadWith, BatchSize scripts per transaction, with progress lines:
//
//	res, err := demo.LoadWith(ctx, st, demo.Options{Scripts: 1_000_000, Progress: os.Stderr})
package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/theaterscriptpro/tsp/internal/password"
	"github.com/theaterscriptpro/tsp/internal/theater"
)

// DefaultScripts is how many scripts Load creates when asked for n <= 0.
const DefaultScripts = 3000

// MaxScripts bounds n: a million scripts is the catalogue the lists are
// built and benchmarked for.
const MaxScripts = 1_000_000

// BatchSize is how many scripts one transaction of Load inserts by default: big enough
// that a million take 100 commits, small enough that memory stays at a few
// megabytes and other writers wait for one batch at most.
const BatchSize = 10_000

// Options configures LoadWith. The zero value is Load(ctx, st, 0).
type Options struct {
	// Scripts is how many scripts to create; 0 means DefaultScripts, at
	// most MaxScripts.
	Scripts int
	// Progress, when not nil, gets a line after every batch (the server
	// passes os.Stderr).
	Progress io.Writer
	// BatchSize is how many scripts go in one transaction; 0 means
	// BatchSize (the constant).
	BatchSize int
}

// Password is the password of every demo user, so that whoever runs a demo
// can sign in as a playwright and edit. A demo database is for showing, never
// for production data: that is why the password may be public.
const Password = "demo-password"

// EmailDomain is the domain of every demo user's email. ".test" is reserved
// (RFC 2606): no mail to it can reach anyone.
const EmailDomain = "demo.theaterscriptpro.test"

// Store is what Load needs; *sqlstore.Store implements it.
type Store interface {
	theater.UserStore
	theater.ScriptStore
	// CreateScripts inserts complete scripts in one transaction.
	CreateScripts(ctx context.Context, scripts []theater.Script) error
}

// Result says what Load did.
type Result struct {
	// Created is true when Load inserted the catalogue, false when it found
	// it already there.
	Created bool
	// Users are the demo users (playwrights, then a producer), whether just
	// created or found.
	Users []theater.User
	// Scripts is how many scripts Load inserted (0 when Created is false).
	Scripts int
}

// demoUser is one demo account.
type demoUser struct {
	local, name string
	role        theater.Role
}

// users returns the demo accounts. The first is the marker Load looks for.
func users() []demoUser {
	return []demoUser{
		{"ada.marlowe", "Ada Marlowe", theater.RolePlaywright},
		{"tomas.ibsenberg", "Tomás Ibsenberg", theater.RolePlaywright},
		{"noor.calder", "Noor Calder", theater.RolePlaywright},
		{"kenji.sato", "Kenji Sato", theater.RolePlaywright},
		{"maren.okafor", "Maren Okafor", theater.RolePlaywright},
		{"producer", "Riverside Players", theater.RoleProducer},
	}
}

// Load creates the demo users if missing and, unless the catalogue is
// already there, n scripts (n <= 0 means DefaultScripts) spread over the
// playwrights. It is LoadWith(ctx, st, Options{Scripts: n}).
func Load(ctx context.Context, st Store, n int) (Result, error) {
	return LoadWith(ctx, st, Options{Scripts: n})
}

// LoadWith is Load with options: opt.Scripts scripts inserted opt.BatchSize
// per transaction, reporting to opt.Progress. Each batch that commits stays if
// a later one fails (or ctx ends); Load then sees a catalogue and adds
// nothing, so an interrupted load is finished by deleting the database.
func LoadWith(ctx context.Context, st Store, opt Options) (Result, error) {
	n := opt.Scripts
	if n <= 0 {
		n = DefaultScripts
	}
	if n > MaxScripts {
		return Result{}, theater.Invalid("scripts", fmt.Sprintf("must be at most %d", MaxScripts))
	}
	var res Result
	hash := "" // hashed at most once: one argon2id costs tens of milliseconds
	for _, du := range users() {
		u, err := ensureUser(ctx, st, du, &hash)
		if err != nil {
			return Result{}, fmt.Errorf("demo user %s: %w", du.local, err)
		}
		res.Users = append(res.Users, u)
	}
	marker := res.Users[0]
	if p, err := st.ListScripts(ctx, theater.ScriptFilter{AuthorID: marker.ID, Limit: 1}); err != nil {
		return Result{}, fmt.Errorf("look for the demo catalogue: %w", err)
	} else if len(p.Items) > 0 {
		return res, nil
	}
	var authors []theater.User
	for _, u := range res.Users {
		if u.Role == theater.RolePlaywright {
			authors = append(authors, u)
		}
	}
	batch := opt.BatchSize
	if batch <= 0 {
		batch = BatchSize
	}
	gen := newGenerator(authors, n)
	start := time.Now()
	for done := 0; done < n; {
		scripts := gen.next(min(batch, n-done))
		if err := st.CreateScripts(ctx, scripts); err != nil {
			return Result{}, fmt.Errorf("insert demo scripts %d to %d: %w", done+1, done+len(scripts), err)
		}
		done += len(scripts)
		res.Created, res.Scripts = true, done
		if opt.Progress != nil {
			el := time.Since(start)
			fmt.Fprintf(opt.Progress, "demo: %d/%d scripts (%d%%) in %s, %.0f/s\n",
				done, n, done*100/n, el.Round(time.Millisecond), float64(done)/max(el.Seconds(), 1e-9))
		}
	}
	return res, nil
}

// ensureUser returns the demo user, creating it if it does not exist. A
// concurrent Load creating it first (ECONFLICT) is not an error. *hash is the
// hash of Password, made on first need and shared by all demo users.
func ensureUser(ctx context.Context, st Store, du demoUser, hash *string) (theater.User, error) {
	email := du.local + "@" + EmailDomain
	u, _, err := st.UserByEmail(ctx, email)
	if err == nil {
		return u, nil
	}
	if theater.ErrorCode(err) != theater.ENOTFOUND {
		return theater.User{}, err
	}
	if *hash == "" {
		if *hash, err = password.Hash(Password); err != nil {
			return theater.User{}, err
		}
	}
	u, err = st.CreateUser(ctx, theater.NewUser{Email: email, Password: Password, Name: du.name, Role: du.role}, *hash)
	if theater.ErrorCode(err) == theater.ECONFLICT {
		u, _, err = st.UserByEmail(ctx, email)
	}
	return u, err
}

// epoch is when the demo catalogue starts: script i was "published" a few
// hours after script i-1, so lists have a stable, plausible order.
func epoch() time.Time { return time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC) }

// Scripts returns n deterministic scripts by authors (round-robin), with
// fresh ids. The same n gives the same titles, genres, synopses, casts,
// durations, languages and timestamps every time.
func Scripts(n int, authors []theater.User) []theater.Script {
	if len(authors) == 0 || n <= 0 {
		return nil
	}
	return newGenerator(authors, n).next(n)
}

// generator makes the demo scripts one batch at a time, so a million need
// not be in memory at once; its batches in sequence are Scripts(total) cut up.
type generator struct {
	r       *rand.Rand
	authors []theater.User
	genres  []string
	t       time.Time
	i       int
	// scale shrinks the gaps between scripts of a big catalogue: an hour to
	// seven apart, a million scripts would span 460 years (past 2139, the
	// latest date sqlstore accepts, and absurd anyway). Up to scaleFrom
	// scripts the gaps are as they always were; above, the catalogue spans
	// the same nine years or so whatever its size.
	scale float64
}

// scaleFrom is the catalogue size from which the gaps shrink.
const scaleFrom = 20_000

func newGenerator(authors []theater.User, total int) *generator {
	return &generator{r: rand.New(rand.NewPCG(0x7e47e5, 0xc4a1095)), authors: authors, genres: theater.Genres(), t: epoch(),
		scale: min(1, float64(scaleFrom)/float64(max(total, 1)))}
}

// next returns the next n scripts.
func (g *generator) next(n int) []theater.Script {
	r, genres := g.r, g.genres
	out := make([]theater.Script, n)
	for i := range out {
		g.t = g.t.Add(time.Duration(float64(time.Duration(60+r.IntN(360))*time.Minute) * g.scale).Truncate(time.Millisecond))
		t := g.t
		castMin := 1 + r.IntN(8)
		a := g.authors[g.i%len(g.authors)]
		g.i++
		out[i] = theater.Script{
			ID:              theater.NewID(),
			Title:           title(r),
			AuthorID:        a.ID,
			AuthorName:      a.Name,
			Genre:           genres[r.IntN(len(genres))],
			Synopsis:        synopsis(r),
			CastMin:         castMin,
			CastMax:         castMin + r.IntN(16),
			DurationMinutes: 30 + 5*r.IntN(31), // 30 to 180
			Language:        pick(r, languages()),
			CreatedAt:       t,
			UpdatedAt:       t,
		}
	}
	return out
}

func pick(r *rand.Rand, words []string) string { return words[r.IntN(len(words))] }

func title(r *rand.Rand) string {
	switch r.IntN(6) {
	case 0:
		return "The " + pick(r, adjectives()) + " " + pick(r, nouns())
	case 1:
		return "The " + pick(r, nouns()) + " of " + pick(r, places())
	case 2:
		return article(pick(r, nouns())) + " in " + pick(r, seasons())
	case 3:
		return pick(r, firstNames()) + "'s " + pick(r, nouns())
	case 4:
		return pick(r, adjectives()) + " " + pick(r, plurals())
	default:
		return "After the " + pick(r, nouns())
	}
}

// article prefixes w with "A" or "An" (by its first letter; good enough
// for the word lists here).
func article(w string) string {
	if strings.ContainsRune("AEIOUaeiou", rune(w[0])) {
		return "An " + w
	}
	return "A " + w
}

func synopsis(r *rand.Rand) string {
	var b strings.Builder
	who := pick(r, firstNames())
	fmt.Fprintf(&b, "%s, %s, %s %s in %s.", who, pick(r, roles()), pick(r, verbs()), pick(r, objects()), pick(r, places()))
	fmt.Fprintf(&b, " When %s %s, %s must %s.", pick(r, firstNames()), pick(r, complications()), who, pick(r, choices()))
	if r.IntN(2) == 0 {
		fmt.Fprintf(&b, " %s play for %s.", article(strings.ToLower(pick(r, adjectives()))), pick(r, audiences()))
	}
	return b.String()
}

// The word lists are functions, not package variables: nothing can change
// them, and the demo's output depends on nothing but the seed.

func adjectives() []string {
	return []string{"Silent", "Crimson", "Last", "Paper", "Winter", "Hollow", "Burning", "Quiet", "Glass", "Forgotten",
		"Wandering", "Salt", "Iron", "Midnight", "Borrowed", "Distant", "Little", "Velvet", "Broken", "Golden"}
}

func nouns() []string {
	return []string{"Lighthouse", "Orchard", "Ferry", "Inheritance", "Ballroom", "Harbour", "Understudy", "Telegram",
		"Garden", "Archive", "Wedding", "Circus", "Rehearsal", "Crossing", "Lantern", "Mirror", "Season", "Tenant"}
}

func plurals() []string {
	return []string{"Neighbours", "Sisters", "Strangers", "Hours", "Rivers", "Tenants", "Promises", "Ghosts", "Voices"}
}

func places() []string {
	return []string{"a fishing village", "Vienna", "the last station", "a boarding house", "Lagos", "the old theatre",
		"a mountain hotel", "Lisbon", "a border town", "the island", "Kyoto", "a small bakery", "Montreal"}
}

func seasons() []string {
	return []string{"Spring", "Summer", "Autumn", "Winter", "August", "the Rain", "the Fog"}
}

func firstNames() []string {
	return []string{"Ada", "Bram", "Chiara", "Dmitri", "Esme", "Farid", "Greta", "Hugo", "Ines", "Jonah", "Kiri",
		"Leopold", "Mira", "Nikolai", "Odile", "Pavel", "Rosa", "Soren", "Tova", "Yusuf"}
}

func roles() []string {
	return []string{"a retired actress", "a ferry captain", "a young lawyer", "an exiled poet", "a night nurse",
		"a failing magician", "a schoolteacher", "a widowed baker", "a stage manager", "a census clerk"}
}

func verbs() []string {
	return []string{"inherits", "discovers", "hides", "loses", "rebuilds", "sells", "rehearses", "searches for"}
}

func objects() []string {
	return []string{"a crumbling theatre", "a stolen letter", "her mother's diary", "the family farm",
		"a forbidden song", "an empty lighthouse", "a box of photographs", "the wrong suitcase"}
}

func complications() []string {
	return []string{"returns after twenty years", "announces a wedding", "is elected mayor", "goes missing",
		"confesses to a crime", "buys the house next door", "falls ill", "arrives with a secret"}
}

func choices() []string {
	return []string{"choose between loyalty and love", "tell the truth at last", "stage one final performance",
		"leave before the tide turns", "forgive an old enemy", "keep the family together"}
}

func audiences() []string {
	return []string{"small casts", "school groups", "touring companies", "studio theatres", "festival stages"}
}

func languages() []string {
	// Mostly English, as most of the catalogue would be.
	return []string{"en", "en", "en", "en", "en", "en", "fr", "de", "es", "pt-BR", "it", "nl"}
}
