package theater

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// checkText validates a free-text field: valid UTF-8, min to max characters
// (runes, so "é" counts once), and no control characters. Control characters
// (NUL, escape sequences, bidi overrides aside) have no business in a title or
// a name: they break terminals, logs and some databases (PostgreSQL rejects
// NUL in text outright). multiline allows '\n' and '\t' for prose fields.
func checkText(field, s string, min, max int, multiline bool) error {
	if !utf8.ValidString(s) {
		return Invalid(field, "must be valid UTF-8")
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n < min && min == 1:
		return Invalid(field, "must not be empty")
	case n < min || n > max:
		return Invalid(field, "must be "+strconv.Itoa(min)+" to "+strconv.Itoa(max)+" characters")
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return Invalid(field, "must not contain control characters")
		}
	}
	return nil
}

// normalizeNewlines turns "\r\n" and lone "\r" into "\n", so a synopsis
// pasted from any system is stored one way and '\r' need not be allowed.
func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}
