package sqlstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// A cursor is the position of the last script of a page in its list's
// order, so the next page is a keyset seek ("after this row"): the same
// cost at any depth, and stable while scripts are added, because a new row
// lands before or after the position but never shifts it.
//
// Layout (then base64url without padding):
//
//	version 1 | sort 1 | bucket 1 | key | check 8
//	key, sort newest/relevance: createdAt unix ms (int64 BE) | id (16)
//	key, sort title:            id (16) | len (uvarint) | title key
//
// check is the first 8 bytes of SHA-256 over the list's filter (genre, q,
// author, sort, limit) and everything before it. It is not a secret: it
// catches a cursor from another list and any damaged or edited byte. Someone
// who recomputes it can only choose where in the same public list to start.
const cursorVersion = 1

// Cursor error messages (field "cursor").
const (
	msgCursorMalformed = "is not a valid cursor"
	msgCursorForeign   = "belongs to another list or was altered: repeat the request without it"
)

// sortCode numbers the orders inside a cursor.
func sortCode(sort string) byte {
	switch sort {
	case theater.SortTitle:
		return 1
	case theater.SortRelevance:
		return 2
	}
	return 0
}

// listPos is a position in a list: the sort key of one script.
type listPos struct {
	bucket   int // relevance: 0 title match, 1 synopsis only
	created  time.Time
	titleKey string
	id       string
}

// filterKey is the part of a filter a cursor belongs to. Page is not in it:
// the cursor of page 3 is the way to page 4.
func filterKey(f theater.ScriptFilter) []byte {
	var b bytes.Buffer
	for _, s := range []string{f.Genre, f.Query, f.AuthorID, f.Sort, strconv.Itoa(f.Limit)} {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.Bytes()
}

func cursorCheck(f theater.ScriptFilter, payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte("tsp-cursor\x00"))
	h.Write(filterKey(f))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)[:8]
}

// encodeCursor returns the cursor of position p in f's list (f normalised).
func encodeCursor(f theater.ScriptFilter, p listPos) string {
	b := []byte{cursorVersion, sortCode(f.Sort), byte(p.bucket)}
	if f.Sort == theater.SortTitle {
		b = append(b, p.id...)
		b = binary.AppendUvarint(b, uint64(len(p.titleKey)))
		b = append(b, p.titleKey...)
	} else {
		b = binary.BigEndian.AppendUint64(b, uint64(p.created.UnixMilli()))
		b = append(b, p.id...)
	}
	b = append(b, cursorCheck(f, b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor parses a cursor of f's list (f normalised), or returns
// EINVALID on field "cursor" for anything else.
func decodeCursor(f theater.ScriptFilter, c string) (listPos, error) {
	bad := func(msg string) (listPos, error) { return listPos{}, theater.Invalid("cursor", msg) }
	if len(c) > theater.MaxCursorLen {
		return bad(msgCursorMalformed)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	if err != nil || len(b) < 3+theater.IDLen+1+8 { // the shortest: a title cursor of ""
		return bad(msgCursorMalformed)
	}
	if b[0] != cursorVersion {
		return bad(msgCursorMalformed)
	}
	payload, check := b[:len(b)-8], b[len(b)-8:]
	if !bytes.Equal(check, cursorCheck(f, payload)) {
		return bad(msgCursorForeign)
	}
	// The check passed, so the cursor was made for this filter; the fields
	// are validated anyway, since the check is no secret.
	if b[1] != sortCode(f.Sort) {
		return bad(msgCursorForeign)
	}
	var p listPos
	p.bucket = int(b[2])
	if p.bucket > 1 || (p.bucket == 1 && f.Sort != theater.SortRelevance) {
		return bad(msgCursorMalformed)
	}
	key := payload[3:]
	if f.Sort == theater.SortTitle {
		if len(key) < theater.IDLen+1 {
			return bad(msgCursorMalformed)
		}
		p.id = string(key[:theater.IDLen])
		n, w := binary.Uvarint(key[theater.IDLen:])
		rest := key[theater.IDLen+max(w, 0):]
		if w <= 0 || n > maxTitleKeyBytes || uint64(len(rest)) != n || !utf8.Valid(rest) {
			return bad(msgCursorMalformed)
		}
		p.titleKey = string(rest)
	} else {
		if len(key) != 8+theater.IDLen {
			return bad(msgCursorMalformed)
		}
		ms := int64(binary.BigEndian.Uint64(key[:8]))
		if ms < minSearchMs || ms >= maxSearchMs {
			return bad(msgCursorMalformed)
		}
		p.created = time.UnixMilli(ms).UTC()
		p.id = string(key[8:])
	}
	if !theater.ValidID(p.id) {
		return bad(msgCursorMalformed)
	}
	return p, nil
}
