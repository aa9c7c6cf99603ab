package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/redisx"
)

// scriptPage is the body of both lists, GET /api/scripts and GET
// /api/users/{id}/scripts (API.md, Lists and search).
type scriptPage struct {
	Items []theater.Script `json:"items"`
	Page  int              `json:"page"`
	Limit int              `json:"limit"`
	// Total is exact when TotalExact, else a lower bound (above
	// theater.MaxExactTotal matches counting stops).
	Total      int    `json:"total"`
	TotalExact bool   `json:"totalExact"`
	NextCursor string `json:"nextCursor,omitempty"`
}

func pageOf(f theater.ScriptFilter, p theater.ScriptPage) scriptPage {
	items := p.Items
	if items == nil {
		items = []theater.Script{} // [] rather than null
	}
	return scriptPage{Items: items, Page: f.Page, Limit: f.Limit, Total: p.Total, TotalExact: p.TotalExact, NextCursor: p.NextCursor}
}

// The query parameters each list reads; no other parameter changes what it
// answers.
var (
	catalogueParams = []string{"page", "limit", "cursor", "genre", "q", "author", "sort"}
	authorParams    = []string{"page", "limit", "cursor"}
)

// parseFilter reads the parameters names of a list's query string and
// normalises them (theater.ScriptFilter.Normalize). A parameter given twice
// is refused rather than guessed at.
func parseFilter(q url.Values, names []string) (theater.ScriptFilter, error) {
	var f theater.ScriptFilter
	for _, name := range names {
		if len(q[name]) > 1 {
			return f, theater.Invalid(name, "must be given once")
		}
	}
	num := func(name string) (int, error) {
		v := q.Get(name)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, theater.Invalid(name, "must be a positive whole number")
		}
		return n, nil
	}
	var err error
	if f.Page, err = num("page"); err != nil {
		return f, err
	}
	if f.Limit, err = num("limit"); err != nil {
		return f, err
	}
	get := func(name string) string {
		if slices.Contains(names, name) {
			return q.Get(name)
		}
		return ""
	}
	f.Cursor, f.Genre, f.Query, f.AuthorID, f.Sort = get("cursor"), get("genre"), get("q"), get("author"), get("sort")
	if err := f.Normalize(); err != nil {
		return f, err
	}
	return f, nil
}

// listCacheID is the response cache's id of a list request: its filter,
// normalised, so that every spelling of one query ("Love  Story",
// "love story ", "q=love%20story&page=1") shares one entry, and a client can
// make at most pages × limits × sorts entries per query. A request with a
// cursor is not cached (the keyset read costs the same at any depth, and a
// cursor is a position anyone can spell), nor one the handler refuses.
func listCacheID(names []string) func(*http.Request) (string, bool) {
	return func(r *http.Request) (string, bool) {
		f, err := parseFilter(r.URL.Query(), names)
		if err != nil || f.Cursor != "" {
			return "", false
		}
		// Every field, whether the list reads it or not (unread ones are
		// their defaults), and the path's author for an author's list.
		v := url.Values{
			"page": {strconv.Itoa(f.Page)}, "limit": {strconv.Itoa(f.Limit)}, "sort": {f.Sort},
			"genre": {f.Genre}, "q": {f.Query}, "author": {f.AuthorID},
		}
		if id := r.PathValue("id"); id != "" {
			v.Set("id", id)
		}
		return v.Encode(), true
	}
}

func (s *Server) listScripts(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query(), catalogueParams)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.deps.Scripts.ListScripts(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, pageOf(f, p))
}

func (s *Server) getScript(w http.ResponseWriter, r *http.Request) {
	sc, err := s.deps.Scripts.ScriptByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, sc)
}

// scriptStats answers {views}: the Redis counter plus what this instance
// counted and has not flushed yet.
func (s *Server) scriptStats(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	views, err := s.views.views(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if views == 0 {
		// A counter exists only for scripts that were read; with none,
		// ask the database whether the script exists at all.
		if _, err := s.deps.Scripts.ScriptByID(r.Context(), id); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	private(w)
	s.writeJSON(w, r, http.StatusOK, map[string]int64{"views": views})
}

func (s *Server) createScript(w http.ResponseWriter, r *http.Request) {
	u, ok := s.requireUser(w, r)
	if !ok {
		return
	}
	if !theater.CanCreateScript(u) {
		s.fail(w, r, theater.Errorf(theater.EFORBIDDEN, "only playwrights and admins may publish scripts"))
		return
	}
	var in theater.ScriptInput
	if !s.readBody(w, r, &in) {
		return
	}
	sc, err := s.deps.Scripts.CreateScript(r.Context(), u.ID, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.invalidateScript(r, sc); err != nil {
		s.fail(w, r, err)
		return
	}
	s.afterScriptWrite(r, sc.ID, false)
	w.Header().Set("Location", "/api/scripts/"+sc.ID)
	private(w)
	s.writeJSON(w, r, http.StatusCreated, sc)
}

// editableScript loads script {id} from the database (never a cache: an
// authorisation decision needs the truth) and checks that u may change it.
func (s *Server) editableScript(w http.ResponseWriter, r *http.Request, u theater.User) (theater.Script, bool) {
	sc, err := s.deps.Scripts.ScriptByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return sc, false
	}
	if !theater.CanEditScript(u, sc) {
		s.fail(w, r, theater.Errorf(theater.EFORBIDDEN, "only the script's author or an admin may change it"))
		return sc, false
	}
	return sc, true
}

func (s *Server) updateScript(w http.ResponseWriter, r *http.Request) {
	u, ok := s.requireUser(w, r)
	if !ok {
		return
	}
	var in theater.ScriptInput
	if !s.readBody(w, r, &in) {
		return
	}
	if _, ok := s.editableScript(w, r, u); !ok {
		return
	}
	sc, err := s.deps.Scripts.UpdateScript(r.Context(), r.PathValue("id"), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.invalidateScript(r, sc); err != nil {
		s.fail(w, r, err)
		return
	}
	s.afterScriptWrite(r, sc.ID, false)
	private(w)
	s.writeJSON(w, r, http.StatusOK, sc)
}

func (s *Server) deleteScript(w http.ResponseWriter, r *http.Request) {
	u, ok := s.requireUser(w, r)
	if !ok {
		return
	}
	sc, ok := s.editableScript(w, r, u)
	if !ok {
		return
	}
	if err := s.deps.Scripts.DeleteScript(r.Context(), sc.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.views.forget(sc.ID)
	if err := s.invalidateScript(r, sc); err != nil {
		s.fail(w, r, err)
		return
	}
	s.afterScriptWrite(r, sc.ID, true)
	if _, err := s.rdb.Delete(r.Context(), s.keys.ScriptViews(sc.ID)); err != nil && !errors.Is(err, redisx.ErrUnavailable) {
		s.log.Warn("delete view counter", "request_id", RequestID(r.Context()), "error", err.Error())
	}
	w.WriteHeader(http.StatusNoContent)
}
