package sqlstore

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// CreateUser stores a new user with passwordHash. It validates n again with
// ValidateTrusted (admins allowed: deciding who may register as what is the
// caller's job) so the table never holds what the domain forbids. A taken
// email, compared case-insensitively, is ECONFLICT on field "email".
func (s *Store) CreateUser(ctx context.Context, n theater.NewUser, passwordHash string) (theater.User, error) {
	if err := n.ValidateTrusted(); err != nil {
		return theater.User{}, err
	}
	if passwordHash == "" {
		return theater.User{}, theater.Errorf(theater.EINTERNAL, "internal error: empty password hash")
	}
	u := theater.User{
		ID:        theater.NewID(),
		Email:     n.Email, // normalised by ValidateTrusted
		Name:      n.Name,
		Role:      n.Role,
		CreatedAt: s.now(),
	}
	release, err := s.lockWriter(ctx)
	if err != nil {
		return theater.User{}, err
	}
	defer release()
	releaseConn, err := s.holdConn(ctx)
	if err != nil {
		return theater.User{}, err
	}
	defer releaseConn()
	_, err = s.db.ExecContext(ctx,
		`INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		u.ID, u.Email, u.Name, string(u.Role), passwordHash, s.timeArg(u.CreatedAt))
	if err != nil {
		if s.classify(err) == kindUnique {
			return theater.User{}, &theater.Error{Code: theater.ECONFLICT, Field: "email",
				Message: "email: an account with this email already exists", Err: err}
		}
		return theater.User{}, s.wrap(err, "insert user")
	}
	return u, nil
}

const userColumns = `id, email, name, role, created_at`

// UserByID returns the user with id, or ENOTFOUND.
func (s *Store) UserByID(ctx context.Context, id string) (theater.User, error) {
	if !theater.ValidID(id) {
		return theater.User{}, theater.Errorf(theater.ENOTFOUND, "user not found")
	}
	release, err := s.holdConn(ctx)
	if err != nil {
		return theater.User{}, err
	}
	defer release()
	var u theater.User
	err = s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id).
		Scan(&u.ID, &u.Email, &u.Name, &u.Role, scanTime{&u.CreatedAt})
	if isNoRows(err) {
		return theater.User{}, theater.Errorf(theater.ENOTFOUND, "user not found")
	}
	if err != nil {
		return theater.User{}, s.wrap(err, "select user by id")
	}
	return u, nil
}

// UserByEmail returns the user whose email equals email compared
// case-insensitively, with the stored password hash, or ENOTFOUND.
func (s *Store) UserByEmail(ctx context.Context, email string) (theater.User, string, error) {
	var (
		u    theater.User
		hash string
	)
	email = theater.NormalizeEmail(email)
	// No stored email is this long or holds NUL or invalid UTF-8, and
	// PostgreSQL would reject the latter two with an error, not "no rows".
	if len(email) > theater.MaxEmailLen || !utf8.ValidString(email) || strings.ContainsRune(email, 0) {
		return theater.User{}, "", theater.Errorf(theater.ENOTFOUND, "user not found")
	}
	release, err := s.holdConn(ctx)
	if err != nil {
		return theater.User{}, "", err
	}
	defer release()
	err = s.db.QueryRowContext(ctx,
		`SELECT `+userColumns+`, password_hash FROM users WHERE email = $1`, email).
		Scan(&u.ID, &u.Email, &u.Name, &u.Role, scanTime{&u.CreatedAt}, &hash)
	if isNoRows(err) {
		return theater.User{}, "", theater.Errorf(theater.ENOTFOUND, "user not found")
	}
	if err != nil {
		return theater.User{}, "", s.wrap(err, "select user by email")
	}
	return u, hash, nil
}
