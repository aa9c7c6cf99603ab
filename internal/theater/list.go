package theater

import "strings"

// ScriptFilter selects a page of scripts (API.md, Lists and search). The
// zero value is the first page of everything, newest first.
type ScriptFilter struct {
	Page     int    // 1-based; 0 means 1. Only for the first pages: Cursor goes deeper.
	Limit    int    // 1 to 100; 0 means 20
	Genre    string // one of Genres(), or "" for all
	Query    string // full-text search over title and synopsis (Normalize folds it)
	AuthorID string // "" for all authors
	Sort     string // "" (best match first with Query, else newest), SortNewest or SortTitle
	// Cursor is a previous page's NextCursor: the page after it. It
	// replaces Page, and is only valid with the filter it came from.
	Cursor string
}

// Orders a list can have.
const (
	SortNewest = "newest" // createdAt desc, then id
	SortTitle  = "title"  // title (case-insensitive), then id
	// SortRelevance is the default with a query: a title match before a
	// synopsis-only match, then newest. Without a query it is SortNewest.
	SortRelevance = "relevance"
)

// Paging defaults and bounds.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	// MaxPage is the deepest page number: an offset walks every row before
	// it, so deeper pages take the cursor, which costs the same at any depth.
	MaxPage = 100
	// MaxExactTotal is the count up to which a list's total is exact; above
	// it the total is a lower bound and ScriptPage.TotalExact is false.
	MaxExactTotal = 10000
	// MaxCursorLen bounds a cursor. A newest-first cursor is under 50
	// characters; a sort=title one carries the title's sort key (at most
	// 600 bytes), so up to about 840.
	MaxCursorLen = 1024
)

// ScriptPage is one page of a list.
type ScriptPage struct {
	Items []Script
	// Total counts the matches across all pages, exactly when TotalExact;
	// else it is at least MaxExactTotal.
	Total      int
	TotalExact bool
	// NextCursor fetches the page after this one; "" on the last page.
	NextCursor string
}

// Normalize applies defaults and checks f. The error names the query
// parameter at fault with the names API.md gives them: page, limit, genre,
// q, author, sort, cursor. Equivalent queries come out equal (q trimmed,
// case-folded, inner spaces collapsed), so they can share a cache entry.
// Whether a cursor belongs to f is for the store to check.
func (f *ScriptFilter) Normalize() error {
	if f.Page == 0 {
		f.Page = 1
	}
	if f.Page < 1 || f.Page > MaxPage {
		return Invalid("page", "must be 1 to 100 (use cursor for deeper pages)")
	}
	if f.Limit == 0 {
		f.Limit = DefaultLimit
	}
	if f.Limit < 1 || f.Limit > MaxLimit {
		return Invalid("limit", "must be 1 to 100")
	}
	f.Genre = strings.ToLower(strings.TrimSpace(f.Genre))
	if f.Genre != "" {
		if err := checkGenre("genre", f.Genre); err != nil {
			return err
		}
	}
	// Trimmed before the check, as API.md says: a trailing newline or tab
	// is space around the query, not a control character in it.
	if err := checkText("q", strings.TrimSpace(f.Query), 0, MaxQueryLen, false); err != nil {
		return err
	}
	f.Query = FoldQuery(f.Query)
	if f.AuthorID != "" && !ValidID(f.AuthorID) {
		return Invalid("author", "must be a user id")
	}
	switch f.Sort = strings.ToLower(strings.TrimSpace(f.Sort)); f.Sort {
	case "", SortRelevance: // the default, also when spelled out
		f.Sort = SortNewest
		if f.Query != "" {
			f.Sort = SortRelevance
		}
	case SortNewest, SortTitle:
	default:
		return Invalid("sort", "must be newest or title")
	}
	if len(f.Cursor) > MaxCursorLen {
		return Invalid("cursor", "is not a cursor of this list")
	}
	if f.Cursor != "" && f.Page != 1 {
		return Invalid("cursor", "cannot be combined with page")
	}
	return nil
}

// Offset returns the number of rows before f's page. Call it after Normalize.
func (f ScriptFilter) Offset() int { return (f.Page - 1) * f.Limit }

// FoldQuery is a search query in its canonical spelling: lower-cased, its
// words separated by single spaces.
func FoldQuery(q string) string {
	return strings.Join(strings.Fields(strings.ToLower(q)), " ")
}
