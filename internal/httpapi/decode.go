package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/problem"
)

// MaxBodyBytes is the largest request body any endpoint reads (API.md: 1 MiB).
const MaxBodyBytes = 1 << 20

// errTooLarge marks a body over MaxBodyBytes; it becomes 413.
var errTooLarge = errors.New("httpapi: body too large")

// errMediaType marks a body that is not JSON; it becomes 415.
var errMediaType = errors.New("httpapi: unsupported media type")

// decodeJSON reads exactly one JSON object from r's body into v: no unknown
// fields, no trailing data, at most MaxBodyBytes. Its errors are either
// EINVALID domain errors naming the field at fault, errTooLarge or
// errMediaType.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		// A missing Content-Type is accepted for curl's sake; anything that a
		// browser form could send cross-site is not.
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errMediaType
		}
	}
	if r.ContentLength > MaxBodyBytes {
		return errTooLarge
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Anything after the object, even a second object, is refused: a body
	// means one thing only.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return theater.Invalid("body", "must hold one JSON object and nothing after it")
	}
	return nil
}

// jsonError translates encoding/json's errors into messages that name the
// field and never echo the input.
func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return errTooLarge
	case errors.Is(err, io.EOF):
		return theater.Invalid("body", "must be a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return theater.Invalid("body", "is truncated JSON")
	case errors.As(err, &syn):
		return theater.Invalid("body", "is malformed JSON at byte "+strconv.FormatInt(syn.Offset, 10))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return theater.Invalid("body", "must be a JSON object")
		}
		return theater.Invalid(typ.Field, "must be "+jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		switch {
		case name == "":
			name = "(empty name)"
		case len(name) > 64 || !printable(name):
			name = "(unprintable)"
		}
		return theater.Invalid(name, "is not a known field")
	default:
		// Request types hold only strings, numbers and booleans (timestamps
		// are parsed by the handlers), so this is a nesting or depth error.
		return theater.Invalid("body", "is not valid for this request")
	}
}

// jsonKind names a Go kind in JSON's words.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number in range"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "of another type"
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// readBody decodes the request body into v, writing the problem response
// itself on failure; it reports whether the handler may go on.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	err := decodeJSON(w, r, v)
	switch {
	case err == nil:
		return true
	case errors.Is(err, errTooLarge):
		problem.Write(w, problem.Details{Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("the body must be at most %d bytes", MaxBodyBytes)})
	case errors.Is(err, errMediaType):
		problem.Write(w, problem.Details{Status: http.StatusUnsupportedMediaType,
			Detail: "the body must be application/json"})
	default:
		s.fail(w, r, err)
	}
	return false
}
