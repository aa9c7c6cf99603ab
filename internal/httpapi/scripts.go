package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/redisx"
)

// scriptPage is the body of GET /api/scripts.
type scriptPage struct {
	Items []theater.Script `json:"items"`
	Page  int              `json:"page"`
	Limit int              `json:"limit"`
	Total int              `json:"total"`
}

// scriptList is the body of GET /api/users/{id}/scripts.
type scriptList struct {
	Items []theater.Script `json:"items"`
	Total int              `json:"total"`
}

// listParams are the query parameters of GET /api/scripts; the response
// cache keys on these alone, so any other parameter cannot split the cache.
func listParams() []string { return []string{"page", "limit", "genre", "q", "author"} }

// parseFilter reads the list's query parameters. A parameter given twice is
// refused rather than guessed at.
func parseFilter(q url.Values) (theater.ScriptFilter, error) {
	var f theater.ScriptFilter
	for _, name := range listParams() {
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
	f.Genre, f.Query, f.AuthorID = q.Get("genre"), q.Get("q"), q.Get("author")
	if err := f.Normalize(); err != nil {
		return f, err
	}
	return f, nil
}

func (s *Server) listScripts(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	items, total, err := s.deps.Scripts.ListScripts(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if items == nil {
		items = []theater.Script{}
	}
	s.writeJSON(w, r, http.StatusOK, scriptPage{Items: items, Page: f.Page, Limit: f.Limit, Total: total})
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
	raw, found, err := s.rdb.Get(r.Context(), s.keys.ScriptViews(id))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var views int64
	if found {
		if views, err = strconv.ParseInt(string(raw), 10, 64); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	views += s.views.unflushed(id)
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
