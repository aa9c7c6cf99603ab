package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/redisx"
)

// UserTTL is how long a public profile stays in the cache-aside entry
// user:{id} (the original guide's one hour for user data).
const UserTTL = time.Hour

// UserNegativeTTL is how long "no such user" is remembered, so a flood of
// lookups of missing ids does not reach the database. Ids are random and
// new users get new ids, so a remembered miss cannot hide a new user.
const UserNegativeTTL = 5 * time.Minute

// publicUser is a profile as anyone may see it: no email.
type publicUser struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Role      theater.Role `json:"role"`
	CreatedAt time.Time    `json:"createdAt"`
}

func isNotFound(err error) bool { return theater.ErrorCode(err) == theater.ENOTFOUND }

// publicProfile is the cache-aside read of user:{id}, as the original
// guide's redisService.cache(cacheKeys.user(id), fetch, 3600). When Redis is
// down redisx loads from the database directly.
func (s *Server) publicProfile(ctx context.Context, id string) (publicUser, error) {
	p, err := redisx.CacheWith(ctx, s.rdb, s.keys.User(id), redisx.CacheOptions{
		TTL:         UserTTL,
		NotFound:    isNotFound,
		NegativeTTL: UserNegativeTTL,
	}, func(ctx context.Context) (publicUser, error) {
		u, err := s.deps.Users.UserByID(ctx, id)
		if err != nil {
			return publicUser{}, err
		}
		return publicUser{ID: u.ID, Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt}, nil
	})
	if errors.Is(err, redisx.ErrNotFound) {
		return p, theater.Errorf(theater.ENOTFOUND, "user not found")
	}
	return p, err
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	p, err := s.publicProfile(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, p)
}

// userScripts answers an author's scripts, paged like the catalogue.
func (s *Server) userScripts(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f, err := parseFilter(r.URL.Query(), authorParams)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.publicProfile(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	f.AuthorID = id
	p, err := s.deps.Scripts.ListScripts(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, pageOf(f, p))
}

// register creates a producer or playwright account. It needs no Redis.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var in theater.NewUser
	if !s.readBody(w, r, &in) {
		return
	}
	if err := in.Validate(); err != nil {
		s.fail(w, r, err)
		return
	}
	hash, err := s.hashPassword(r, in.Password)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.deps.Users.CreateUser(r.Context(), in, hash)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	private(w)
	w.Header().Set("Location", "/api/users/"+u.ID)
	s.writeJSON(w, r, http.StatusCreated, map[string]theater.User{"user": u})
}
