package sqlstore

import (
	"context"
	"database/sql"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// CreateLicense validates in against the current time and stores a licence
// of scriptID for userID. A missing script is ENOTFOUND on field "scriptId",
// a missing user ENOTFOUND on field "userId".
func (s *Store) CreateLicense(ctx context.Context, scriptID, userID string, in theater.LicenseInput) (theater.License, error) {
	now := s.now()
	if err := in.Validate(now); err != nil {
		return theater.License{}, err
	}
	scriptGone := &theater.Error{Code: theater.ENOTFOUND, Field: "scriptId", Message: "scriptId: script not found"}
	userGone := &theater.Error{Code: theater.ENOTFOUND, Field: "userId", Message: "userId: user not found"}
	if !theater.ValidID(scriptID) {
		return theater.License{}, scriptGone
	}
	if !theater.ValidID(userID) {
		return theater.License{}, userGone
	}
	l := theater.License{
		ID: theater.NewID(), ScriptID: scriptID, UserID: userID, Type: in.Type,
		Performances: in.Performances, StartsAt: in.StartsAt, EndsAt: in.EndsAt, CreatedAt: now,
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Look first so the error can say which of the two is missing; the
		// foreign keys still guard against a delete racing the insert.
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM scripts WHERE id = $1`, scriptID).Scan(&one); isNoRows(err) {
			return scriptGone
		} else if err != nil {
			return s.wrap(err, "check script")
		}
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = $1`, userID).Scan(&one); isNoRows(err) {
			return userGone
		} else if err != nil {
			return s.wrap(err, "check user")
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO licenses
		(id, script_id, user_id, type, performances, starts_at, ends_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			l.ID, l.ScriptID, l.UserID, string(l.Type), l.Performances,
			s.timeArg(l.StartsAt), s.timeArg(l.EndsAt), s.timeArg(l.CreatedAt))
		if err != nil {
			if s.classify(err) == kindForeignKey {
				return &theater.Error{Code: theater.ENOTFOUND, Field: "scriptId", Message: scriptGone.Message, Err: err}
			}
			return s.wrap(err, "insert licence")
		}
		return nil
	})
	if err != nil {
		return theater.License{}, err
	}
	return l, nil
}

// LicensesByUser returns userID's licences, newest first. An unknown user
// has none.
func (s *Store) LicensesByUser(ctx context.Context, userID string) ([]theater.License, error) {
	ls := []theater.License{} // non-nil: encodes as [] rather than null
	if !theater.ValidID(userID) {
		return ls, nil
	}
	release, err := s.holdConn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := s.db.QueryContext(ctx, `SELECT id, script_id, user_id, type, performances, starts_at, ends_at, created_at
	FROM licenses WHERE user_id = $1 ORDER BY created_at DESC, id`, userID)
	if err != nil {
		return nil, s.wrap(err, "select licences")
	}
	defer rows.Close()
	for rows.Next() {
		var l theater.License
		if err := rows.Scan(&l.ID, &l.ScriptID, &l.UserID, &l.Type, &l.Performances,
			scanTime{&l.StartsAt}, scanTime{&l.EndsAt}, scanTime{&l.CreatedAt}); err != nil {
			return nil, s.wrap(err, "scan licence")
		}
		ls = append(ls, l)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err, "select licences")
	}
	return ls, nil
}
