package sqlstore

import (
	"context"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// Full-text search (API.md, Lists and search) is one tokenizer, written in
// Go, feeding each database's own index: FTS5 in SQLite, tsvector + GIN in
// PostgreSQL. Go cuts and folds the words both when a script is stored and
// when a query arrives, and hands the databases finished tokens (SQLite's
// "ascii" tokenizer splits only on the spaces we put; PostgreSQL gets
// array_to_tsvector and a tsquery of quoted lexemes, never a parser or a
// dictionary). So:
//   - both databases find exactly the same scripts for every query;
//   - accent folding needs no `unaccent` extension. The test server has it,
//     but CREATE EXTENSION needs rights a managed PostgreSQL may not grant,
//     it is per database rather than per schema, and SQLite has nothing
//     like it: folding in Go is the one way both stay identical;
//   - a query's punctuation can never become FTS5 or tsquery syntax: only
//     letters and digits survive into a token, and each token is quoted.

// maxTokenRunes truncates very long "words" (a synopsis may be one 5,000
// letter string): PostgreSQL refuses lexemes over 2 KB, and nobody searches
// for the 65th letter of a word. Queries are cut the same way, so a long
// query word still finds the long word it starts.
const maxTokenRunes = 64

// maxTitleKeyBytes bounds the stored sort key of a title (and so the
// cursor of sort=title); titles that share their first 600 bytes are then
// ordered by id, which a title order of the catalogue can live with.
const maxTitleKeyBytes = 600

// searchTokens returns the words of s, folded (lower case, accents off),
// in order, duplicates kept. A word is a run of letters, digits and marks;
// everything else separates words.
func searchTokens(s string) []string {
	var (
		toks []string
		b    strings.Builder
		n    int
	)
	flush := func() {
		if b.Len() > 0 {
			toks = append(toks, b.String())
			b.Reset()
			n = 0
		}
	}
	for _, r := range strings.ToLower(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			// A combining accent ("e" + U+0301): dropped, like the
			// precomposed one.
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			if n >= maxTokenRunes {
				continue
			}
			if f := foldRune(r); f != "" {
				b.WriteString(f)
			} else {
				b.WriteRune(r)
			}
			n++
		default:
			flush()
		}
	}
	flush()
	return toks
}

// titleKey is the sort key of sort=title: the title folded like a search
// (so "Émile" sorts with "emile"), its words joined by single spaces, and
// compared bytewise in both databases (PostgreSQL: COLLATE "C").
func titleKey(title string) string {
	k := strings.Join(searchTokens(title), " ")
	if len(k) > maxTitleKeyBytes {
		k = k[:maxTitleKeyBytes]
		for !utf8.ValidString(k) {
			k = k[:len(k)-1]
		}
	}
	return k
}

// uniqueTokens returns toks sorted without duplicates (the lexemes of a
// tsvector).
func uniqueTokens(toks []string) []string {
	out := slices.Clone(toks)
	slices.Sort(out)
	return slices.Compact(out)
}

// genreToken is a genre as a single token ("science-fiction" becomes
// "sciencefiction"), for the genre column of the SQLite index.
func genreToken(genre string) string {
	return strings.Join(searchTokens(genre), "")
}

// ftsPhrase quotes one token for FTS5: inside "..." everything is text, and
// a '"' is doubled. Our tokens hold no '"', but the quoting does not rely on it.
func ftsPhrase(tok string) string {
	return `"` + strings.ReplaceAll(tok, `"`, `""`) + `"`
}

// search is a query's search as the store runs it: the tokens, and the words of the
// index that the last token begins (nil: let FTS5 expand the prefix).
type search struct {
	toks []string
	last []string
	// few is set once the matches are counted and are at most
	// MaxExactTotal: sorting them all is then cheaper than walking an
	// order's index in the hope of meeting them (PostgreSQL, walk).
	few bool
}

// words is the FTS5 expression "every token, the last also as a
// prefix": the last as "tok"*, or as the OR of the words it begins.
func (q search) words() string {
	parts := make([]string, len(q.toks))
	for i, t := range q.toks {
		parts[i] = ftsPhrase(t)
	}
	if q.last == nil {
		parts[len(parts)-1] += "*"
	} else {
		alts := make([]string, len(q.last))
		for i, w := range q.last {
			alts[i] = ftsPhrase(w)
		}
		parts[len(parts)-1] = "(" + strings.Join(alts, " OR ") + ")"
	}
	return "(" + strings.Join(parts, " AND ") + ")"
}

// match is the FTS5 MATCH expression of a search: bucket titleMatch,
// bodyOnlyMatch or anyMatch, restricted to genre and author when set.
func (q search) match(which matchKind, genre, authorID string) string {
	w := q.words()
	var e string
	switch which {
	case titleMatch:
		e = "({title} : " + w + ")"
	case bodyOnlyMatch:
		e = "(({title body} : " + w + ") NOT ({title} : " + w + "))"
	default:
		e = "({title body} : " + w + ")"
	}
	if genre != "" {
		e += " AND ({genre} : " + ftsPhrase(genreToken(genre)) + ")"
	}
	if authorID != "" {
		e += " AND ({author} : " + ftsPhrase(authorID) + ")"
	}
	return e
}

// tsQuery is the PostgreSQL tsquery text of a search, given to the server
// as $n::tsquery (the type's input function: no parser, no dictionary).
// Tokens are letters and digits only, so quoting each in '...' leaves
// nothing for the tsquery grammar to interpret; the last gets :* (prefix).
func tsQuery(toks []string) string {
	parts := make([]string, len(toks))
	for i, t := range toks {
		parts[i] = "'" + strings.ReplaceAll(t, "'", "''") + "'"
		if i == len(toks)-1 {
			parts[i] += ":*"
		}
	}
	return strings.Join(parts, " & ")
}

// matchKind selects which matches of a search a query returns.
type matchKind int

const (
	anyMatch      matchKind = iota // every word in the title or the synopsis
	titleMatch                     // every word in the title: ranked first
	bodyOnlyMatch                  // a match that is not a title match
)

// searchDoc is what the index holds for one script.
type searchDoc struct {
	title, body []string // tokens of the title and of the synopsis
}

func newSearchDoc(title, synopsis string) searchDoc {
	return searchDoc{title: searchTokens(title), body: searchTokens(synopsis)}
}

// pgTitleLexemes and pgAllLexemes are the arrays for array_to_tsvector.
func (d searchDoc) pgTitleLexemes() []string { return uniqueTokens(d.title) }
func (d searchDoc) pgAllLexemes() []string {
	return uniqueTokens(append(slices.Clone(d.title), d.body...))
}

// foldRune returns the unaccented spelling of a lower-case Latin letter
// with a diacritic or a ligature, or "" when r is not one. The standard
// library has no Unicode decomposition; this covers Latin-1 and Latin
// Extended-A (every Western, Central European, Nordic, Baltic and Turkish
// letter) plus Romanian's comma letters. Decomposed input (letter + U+0301)
// is folded by dropping the mark in searchTokens.
func foldRune(r rune) string {
	if r < 0xC0 {
		return ""
	}
	switch r {
	case 'à', 'á', 'â', 'ã', 'ä', 'å', 'ā', 'ă', 'ą':
		return "a"
	case 'æ':
		return "ae"
	case 'ç', 'ć', 'ĉ', 'ċ', 'č':
		return "c"
	case 'ð', 'ď', 'đ':
		return "d"
	case 'è', 'é', 'ê', 'ë', 'ē', 'ĕ', 'ė', 'ę', 'ě':
		return "e"
	case 'ĝ', 'ğ', 'ġ', 'ģ':
		return "g"
	case 'ĥ', 'ħ':
		return "h"
	case 'ì', 'í', 'î', 'ï', 'ĩ', 'ī', 'ĭ', 'į', 'ı':
		return "i"
	case 'ĳ':
		return "ij"
	case 'ĵ':
		return "j"
	case 'ķ', 'ĸ':
		return "k"
	case 'ĺ', 'ļ', 'ľ', 'ŀ', 'ł':
		return "l"
	case 'ñ', 'ń', 'ņ', 'ň', 'ŉ', 'ŋ':
		return "n"
	case 'ò', 'ó', 'ô', 'õ', 'ö', 'ø', 'ō', 'ŏ', 'ő':
		return "o"
	case 'œ':
		return "oe"
	case 'ŕ', 'ŗ', 'ř':
		return "r"
	case 'ś', 'ŝ', 'ş', 'š', 'ș', 'ſ':
		return "s"
	case 'ß':
		return "ss"
	case 'ţ', 'ť', 'ŧ', 'ț':
		return "t"
	case 'þ':
		return "th"
	case 'ù', 'ú', 'û', 'ü', 'ũ', 'ū', 'ŭ', 'ů', 'ű', 'ų':
		return "u"
	case 'ŵ':
		return "w"
	case 'ý', 'ÿ', 'ŷ':
		return "y"
	case 'ź', 'ż', 'ž':
		return "z"
	}
	return ""
}

// queryTokens returns the tokens of a normalised query (theater.FoldQuery
// has already lower-cased it).
func queryTokens(f theater.ScriptFilter) []string { return searchTokens(f.Query) }

// vocabMax is how many index words a last token may begin for the OR of
// them to replace the prefix query.
const vocabMax = 64

// newSearch prepares f's search. In SQLite a last token of four or more
// letters is looked up in search_words (migration 0003): FTS5 answers
// "tok"* by merging the doclists of all the words it begins, a cost that
// grows with the catalogue, but streams an OR of those words newest first.
// (Up to three letters, prefix='1 2 3' has the merged doclist ready; beyond
// vocabMax words, "tok"* it is.) ok is false when the last token begins no
// word at all: nothing matches.
func (s *Store) newSearch(ctx context.Context, f theater.ScriptFilter) (q search, ok bool, err error) {
	q.toks = queryTokens(f)
	if len(q.toks) == 0 || s.dialect != sqliteDialect {
		return q, true, nil
	}
	last := q.toks[len(q.toks)-1]
	if utf8.RuneCountInString(last) <= 3 {
		return q, true, nil
	}
	// Every word that starts with last sorts from last to last+"\xff"
	// (no UTF-8 byte is 0xff).
	rows, err := s.db.QueryContext(ctx, `SELECT word FROM search_words WHERE word >= $1 AND word < $2 LIMIT `+
		itoa(vocabMax+1), last, last+"\xff")
	if err != nil {
		return q, false, s.wrap(err, "look up search words")
	}
	defer rows.Close()
	words := []string{}
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			return q, false, s.wrap(err, "look up search words")
		}
		words = append(words, w)
	}
	if err := rows.Err(); err != nil {
		return q, false, s.wrap(err, "look up search words")
	}
	if len(words) == 0 {
		return q, false, nil
	}
	if len(words) <= vocabMax {
		q.last = words
	}
	return q, true, nil
}
