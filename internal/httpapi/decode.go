package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
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
// fields, field names spelled exactly (encoding/json would take "Title" or
// "TITLE" for "title"), no field twice, no trailing data, at most
// MaxBodyBytes. Its errors are either EINVALID domain errors naming the
// field at fault, errTooLarge or errMediaType.
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return jsonError(err)
	}
	if err := exactFields(body, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Anything after the object, even a second object, is refused: a body
	// means one thing only.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return theater.Invalid("body", "must hold one JSON object and nothing after it")
	}
	return nil
}

// exactFields checks the top-level member names of the JSON object in body
// against the json names of the struct v points to, byte for byte: Go's
// decoder folds case, so without this {"Title":…} or {"PASSWORD":…} would be
// taken as if spelled right, and of a name given twice the last would
// silently win (a body that two parsers read differently). Request bodies
// are flat objects, so only the top level is checked. Anything that is not
// a well-formed object is left to the decoder, which reports it.
func exactFields(body []byte, v any) error {
	names := jsonFieldNames(reflect.TypeOf(v))
	if names == nil || !json.Valid(body) {
		// Malformed JSON is reported as such (truncated, byte offset) by
		// the decoder, whatever names it holds.
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := make(map[string]bool, len(names))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		name, _ := tok.(string)
		if !names[name] {
			return theater.Invalid(fieldLabel(name), "is not a known field")
		}
		if seen[name] {
			return theater.Invalid(name, "must be given once")
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// jsonFieldNames returns the member names encoding/json gives the fields of
// struct type t (or *t), or nil when t is not a struct.
func jsonFieldNames(t reflect.Type) map[string]bool {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	names := map[string]bool{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case tag == "-" || !f.IsExported() && !f.Anonymous:
			continue
		case f.Anonymous && name == "":
			for n := range jsonFieldNames(f.Type) {
				names[n] = true
			}
			continue
		case name == "":
			name = f.Name
		}
		names[name] = true
	}
	return names
}

// fieldLabel is a client's field name as it may appear in a problem: never
// the raw bytes of a long or unprintable name.
func fieldLabel(name string) string {
	switch {
	case name == "":
		return "(empty name)"
	case len(name) > 64 || !printable(name):
		return "(unprintable)"
	}
	return name
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
		return theater.Invalid(fieldLabel(name), "is not a known field")
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
