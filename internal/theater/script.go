package theater

import (
	"strings"
	"time"
)

// Script is a published theatre script as clients see it. AuthorName is
// denormalised from the author's user record when the script is read.
type Script struct {
	ID              string    `json:"id"`
	Title           string    `json:"title"`
	AuthorID        string    `json:"authorId"`
	AuthorName      string    `json:"authorName"`
	Genre           string    `json:"genre"`
	Synopsis        string    `json:"synopsis"`
	CastMin         int       `json:"castMin"`
	CastMax         int       `json:"castMax"`
	DurationMinutes int       `json:"durationMinutes"`
	Language        string    `json:"language"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
}

// Limits on script input.
const (
	MaxTitleLen    = 200
	MaxSynopsisLen = 5000
	MaxCast        = 200
	MaxDuration    = 600 // minutes; a ten-hour cycle is the longest we list
	MaxLanguageLen = 35  // the longest BCP 47 tag a registry should need
	MaxQueryLen    = 200
)

// DefaultLanguage is the language of a script whose input leaves it empty.
const DefaultLanguage = "en"

// Genres returns the genres a script may have, in display order. The list is
// fixed rather than free text so that the genre filter finds every script of
// a genre ("Comedy", "comedy " and "comedie" would otherwise be three), and so
// that list-cache keys stay few. Adding a genre is a one-line change here.
func Genres() []string {
	return []string{
		"comedy", "drama", "tragedy", "tragicomedy", "farce", "satire",
		"musical", "opera", "melodrama", "thriller", "mystery", "horror",
		"romance", "historical", "fantasy", "science-fiction", "absurdist",
		"documentary", "children", "monologue", "devised", "other",
	}
}

// ValidGenre reports whether g is one of Genres().
func ValidGenre(g string) bool {
	for _, x := range Genres() {
		if g == x {
			return true
		}
	}
	return false
}

// ScriptInput is the writable part of a script, for create and full update.
type ScriptInput struct {
	Title           string `json:"title"`
	Genre           string `json:"genre"`
	Synopsis        string `json:"synopsis"`
	CastMin         int    `json:"castMin"`
	CastMax         int    `json:"castMax"`
	DurationMinutes int    `json:"durationMinutes"`
	Language        string `json:"language"`
}

// Validate normalises in in place (trims text, lower-cases genre, normalises
// newlines in the synopsis, defaults the language to "en") and checks it. The
// error names the failing field with its JSON name.
func (in *ScriptInput) Validate() error {
	in.Title = strings.TrimSpace(in.Title)
	if err := checkText("title", in.Title, 1, MaxTitleLen, false); err != nil {
		return err
	}
	in.Genre = strings.ToLower(strings.TrimSpace(in.Genre))
	if err := checkGenre("genre", in.Genre); err != nil {
		return err
	}
	in.Synopsis = strings.TrimSpace(normalizeNewlines(in.Synopsis))
	if err := checkText("synopsis", in.Synopsis, 0, MaxSynopsisLen, true); err != nil {
		return err
	}
	if in.CastMin < 1 || in.CastMin > MaxCast {
		return Invalid("castMin", "must be 1 to 200")
	}
	if in.CastMax < in.CastMin || in.CastMax > MaxCast {
		return Invalid("castMax", "must be castMin to 200")
	}
	if in.DurationMinutes < 1 || in.DurationMinutes > MaxDuration {
		return Invalid("durationMinutes", "must be 1 to 600")
	}
	in.Language = strings.TrimSpace(in.Language)
	if in.Language == "" {
		in.Language = DefaultLanguage
	}
	return checkLanguage(in.Language)
}

func checkGenre(field, g string) error {
	if g == "" {
		return Invalid(field, "must not be empty")
	}
	if !ValidGenre(g) {
		return Invalid(field, "must be one of "+strings.Join(Genres(), ", "))
	}
	return nil
}

// checkLanguage accepts the shape of a BCP 47 tag: 2–8 letters, then
// hyphen-separated subtags of 1–8 letters or digits ("en", "pt-BR",
// "sr-Latn-RS"). It does not consult the IANA registry: a shape check keeps
// garbage out, and the standard library has no registry to check against.
func checkLanguage(s string) error {
	const msg = "must be a language tag such as en or pt-BR"
	if len(s) > MaxLanguageLen {
		return Invalid("language", "must be at most 35 characters")
	}
	for i, sub := range strings.Split(s, "-") {
		if len(sub) < 1 || len(sub) > 8 || (i == 0 && len(sub) < 2) {
			return Invalid("language", msg)
		}
		for j := 0; j < len(sub); j++ {
			c := sub[j]
			letter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
			digit := c >= '0' && c <= '9'
			if !letter && !(digit && i > 0) {
				return Invalid("language", msg)
			}
		}
	}
	return nil
}
