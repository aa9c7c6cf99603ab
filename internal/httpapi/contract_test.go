package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The contract: every response any test of this package receives through an
// instance's client is checked against openapi.json, and so is the request
// that caused it, so the document and the server cannot drift apart
// unnoticed. kin-openapi loads the document, checks it is a valid OpenAPI
// document and finds the operation of a request. The schemas are evaluated
// by santhosh-tekuri/jsonschema (JSON Schema 2020-12, the dialect of
// OpenAPI 3.1), each compiled once: openapi3filter compiles a schema on
// every call, which made the load tests ten times slower, and silently falls
// back to its 3.0 validator when a schema does not compile.

// contract is openapi.json loaded once for the whole test binary.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	raw    map[string]any // the document as plain JSON, for pointers

	mu       sync.Mutex
	compiler *jsonschema.Compiler
	compiled map[string]*jsonschema.Schema // by JSON pointer
}

// contractURL is the document's name as a JSON Schema resource.
const contractURL = "file:///openapi.json"

var (
	contractOnce sync.Once
	contractDoc  *contract
	contractErr  error
)

func loadContract(tb testing.TB) *contract {
	tb.Helper()
	contractOnce.Do(func() { contractDoc, contractErr = newContract(OpenAPI()) })
	if contractErr != nil {
		tb.Fatal(contractErr)
	}
	return contractDoc
}

func newContract(src []byte) (*contract, error) {
	doc, err := openapi3.NewLoader().LoadFromData(src)
	if err != nil {
		return nil, fmt.Errorf("load openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
	}
	// Tests reach the server on 127.0.0.1:port, not the documented
	// server URL: route on paths alone.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route openapi.json: %w", err)
	}
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	comp.AssertFormat()
	if err := comp.AddResource(contractURL, raw); err != nil {
		return nil, err
	}
	return &contract{doc: doc, router: router, raw: raw.(map[string]any), compiler: comp,
		compiled: map[string]*jsonschema.Schema{}}, nil
}

// pointer builds a JSON pointer from unescaped tokens.
func pointer(base string, tokens ...string) string {
	for _, t := range tokens {
		if strings.ContainsAny(t, "~/") {
			t = strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
		}
		base += "/" + t
	}
	return base
}

// node returns the value at JSON pointer ptr ("" is the root).
func (c *contract) node(ptr string) any {
	var n any = c.raw
	if ptr == "" {
		return n
	}
	for _, t := range strings.Split(ptr[1:], "/") {
		switch x := n.(type) {
		case map[string]any:
			if strings.Contains(t, "~") {
				t = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
			}
			n = x[t]
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			n = x[i]
		default:
			return nil
		}
	}
	return n
}

// deref follows $ref from the object at ptr and returns where it ends.
func (c *contract) deref(ptr string) (string, map[string]any) {
	for range 10 {
		obj, _ := c.node(ptr).(map[string]any)
		ref, ok := obj["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#") {
			return ptr, obj
		}
		ptr = ref[1:]
	}
	return ptr, nil
}

// schema returns the compiled schema at ptr.
func (c *contract) schema(ptr string) (*jsonschema.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.compiled[ptr]; ok {
		return s, nil
	}
	frag := strings.NewReplacer("{", "%7B", "}", "%7D").Replace(ptr)
	s, err := c.compiler.Compile(contractURL + "#" + frag)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", ptr, err)
	}
	c.compiled[ptr] = s
	return s, nil
}

// validate checks v against the schema at ptr.
func (c *contract) validate(ptr string, v any) error {
	s, err := c.schema(ptr)
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// scalar converts a parameter or header value to the JSON type its schema
// (at ptr, a $ref followed) names; a value that does not convert stays a
// string, which the schema then refuses.
func (c *contract) scalar(ptr, v string) any {
	_, s := c.deref(ptr)
	switch s["type"] {
	case "integer", "number":
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			return json.Number(v)
		}
	case "boolean":
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return v
}

// framingHeaders are set by net/http for every response and describe the
// message, not the API: the document need not declare them.
var framingHeaders = []string{"Content-Type", "Content-Length", "Date", "Transfer-Encoding", "Connection"}

// contractFinding is how a request and its response compare with the
// document.
type contractFinding struct {
	// route is "METHOD /pattern" or "" when the document has no such
	// operation (unknown paths, 405s: the server answers them, the
	// document cannot describe them).
	route string
	// request is the document's judgement of the request: nil when valid.
	request error
	// response lists what the response got wrong.
	response []string
}

// judge checks one exchange. body is the request body as sent.
func (c *contract) judge(req *http.Request, body []byte, status int, header http.Header, respBody []byte) contractFinding {
	var f contractFinding
	route, params, err := c.router.FindRoute(req)
	if err != nil || !exactRoute(route.Path, req.URL.Path) {
		return f
	}
	f.route = req.Method + " " + route.Path
	pathPtr := pointer("", "paths", route.Path)
	opPtr := pointer(pathPtr, strings.ToLower(req.Method))
	f.request = c.checkRequest(pathPtr, opPtr, req, params, body)
	f.response = c.checkResponse(opPtr, req, status, header, respBody)
	return f
}

// checkRequest judges a request as the document describes it: parameters,
// body, and the rules info states in words (a query parameter at most
// once, a body member at most once, at most 1 MiB).
func (c *contract) checkRequest(pathPtr, opPtr string, req *http.Request, pathParams map[string]string, body []byte) error {
	q := req.URL.Query()
	var lists []string
	for _, base := range []string{pathPtr, opPtr} {
		ps, _ := c.node(pointer(base, "parameters")).([]any)
		for i := range ps {
			lists = append(lists, pointer(base, "parameters", strconv.Itoa(i)))
		}
	}
	for _, pp := range lists {
		ptr, p := c.deref(pp)
		name, _ := p["name"].(string)
		var vals []string
		switch p["in"] {
		case "path":
			vals = []string{pathParams[name]}
		case "query":
			vals = q[name]
			if len(vals) == 1 && vals[0] == "" && p["allowEmptyValue"] == true {
				vals = nil // "a zero-length value in place of the omitted parameter"
			}
		case "header":
			vals = req.Header.Values(name)
		}
		if len(vals) == 0 {
			if p["required"] == true {
				return fmt.Errorf("parameter %s is required", name)
			}
			continue
		}
		if len(vals) > 1 && p["in"] == "query" {
			return fmt.Errorf("query parameter %s is given %d times", name, len(vals))
		}
		if err := c.validate(pointer(ptr, "schema"), c.scalar(pointer(ptr, "schema"), vals[0])); err != nil {
			return fmt.Errorf("parameter %s: %v", name, err)
		}
	}
	if len(body) > MaxBodyBytes {
		return fmt.Errorf("the body is %d bytes, over 1 MiB", len(body))
	}
	rbPtr, rb := c.deref(pointer(opPtr, "requestBody"))
	if rb == nil {
		return nil // the server reads no body here: any is ignored
	}
	if len(body) == 0 {
		if rb["required"] == true {
			return errors.New("a body is required")
		}
		return nil
	}
	mt := "application/json" // the server reads a body without Content-Type as JSON
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, _ = mime.ParseMediaType(ct)
	}
	content, _ := rb["content"].(map[string]any)
	if _, ok := content[mt]; !ok {
		return fmt.Errorf("media type %q is not accepted", mt)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("the body is not one JSON value: %v", err)
	}
	if name, ok := duplicateMember(body); ok {
		return fmt.Errorf("member %q is given twice", name)
	}
	if err := c.validate(pointer(rbPtr, "content", mt, "schema"), v); err != nil {
		return fmt.Errorf("body: %v", err)
	}
	return nil
}

// duplicateMember returns a member name that the top-level object in body
// holds twice (JSON Schema sees only one of them).
func duplicateMember(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		name, _ := tok.(string)
		if seen[name] {
			return name, true
		}
		seen[name] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return "", false
		}
	}
	return "", false
}

// checkResponse judges a response: its status is declared, every header it
// carries is declared (framing aside) and matches its schema, required
// headers are there, and the body has a declared media type and matches
// its schema.
func (c *contract) checkResponse(opPtr string, req *http.Request, status int, header http.Header, body []byte) []string {
	respPtr := pointer(opPtr, "responses", strconv.Itoa(status))
	if c.node(respPtr) == nil {
		return []string{fmt.Sprintf("status %d is not declared", status)}
	}
	respPtr, resp := c.deref(respPtr)
	var out []string
	declared, _ := resp["headers"].(map[string]any)
	for name := range header {
		if slices.Contains(framingHeaders, name) {
			continue
		}
		found := false
		for d := range declared {
			if strings.EqualFold(d, name) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, fmt.Sprintf("header %s is sent on %d but not declared", name, status))
		}
	}
	for d := range declared {
		hPtr, h := c.deref(pointer(respPtr, "headers", d))
		vals := header.Values(d)
		if len(vals) == 0 {
			if h["required"] == true {
				out = append(out, fmt.Sprintf("required header %s is missing", d))
			}
			continue
		}
		if h["schema"] == nil || d == "Set-Cookie" {
			continue // Set-Cookie may be sent more than once: its description says what
		}
		sPtr := pointer(hPtr, "schema")
		if err := c.validate(sPtr, c.scalar(sPtr, strings.Join(vals, ", "))); err != nil {
			out = append(out, fmt.Sprintf("header %s %q: %v", d, strings.Join(vals, ", "), oneLine(err.Error())))
		}
	}
	content, _ := resp["content"].(map[string]any)
	switch {
	case req.Method == http.MethodHead:
	case len(content) == 0:
		if len(body) > 0 {
			out = append(out, fmt.Sprintf("a %d has a body but the document declares none", status))
		}
	default:
		mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
		if _, ok := content[mt]; !ok {
			out = append(out, fmt.Sprintf("content type %q is not declared for %d", header.Get("Content-Type"), status))
			break
		}
		sPtr := pointer(respPtr, "content", mt, "schema")
		if c.node(sPtr) == nil {
			break
		}
		var v any = string(body)
		if mt == "application/json" || strings.HasSuffix(mt, "+json") {
			var err error
			if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
				out = append(out, fmt.Sprintf("the body is not JSON: %v", err))
				break
			}
		}
		if err := c.validate(sPtr, v); err != nil {
			out = append(out, "body: "+oneLine(err.Error()))
		}
	}
	slices.Sort(out)
	return out
}

// exactRoute reports whether path is one the template matches segment for
// segment, no segment empty: kin-openapi's router forgives a trailing slash
// ("/api/scripts/" routes to /api/scripts), the server's mux does not (404).
func exactRoute(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if strings.HasPrefix(ts[i], "{") {
			if ps[i] == "" {
				return false
			}
		} else if ts[i] != ps[i] {
			return false
		}
	}
	return true
}

// beyondSchema lists the server's 400s for rules that the document states
// in its descriptions but JSON Schema cannot express: they compare a value
// with the clock or with another member. Each is the operation, the problem's
// field and a part of its detail.
var beyondSchema = []struct{ route, field, detail string }{
	{"POST /api/scripts/{id}/licenses", "endsAt", "must be in the future"},
	{"POST /api/scripts/{id}/licenses", "endsAt", "must be after startsAt"},
	{"POST /api/scripts/{id}/licenses", "endsAt", "at most 10 years after startsAt"},
	{"POST /api/scripts/{id}/licenses", "startsAt", "within 10 years of now"},
	{"POST /api/scripts", "castMax", "must be castMin to"},
	{"PUT /api/scripts/{id}", "castMax", "must be castMin to"},
	// A cursor is opaque: the document can say its alphabet and length,
	// not which positions and lists the server issued.
	{"GET /api/scripts", "cursor", "is not a valid cursor"},
	{"GET /api/scripts", "cursor", "belongs to another list"},
	{"GET /api/users/{id}/scripts", "cursor", "is not a valid cursor"},
	{"GET /api/users/{id}/scripts", "cursor", "belongs to another list"},
}

// isBeyondSchema reports whether a 400 with body respBody is one of
// beyondSchema's.
func isBeyondSchema(route string, respBody []byte) bool {
	var p problemBody
	if json.Unmarshal(respBody, &p) != nil {
		return false
	}
	for _, b := range beyondSchema {
		if b.route == route && b.field == p.Field && strings.Contains(p.Detail, b.detail) {
			return true
		}
	}
	return false
}

// contractTransport checks every exchange that passes through it against
// the document and reports disagreements as test errors.
type contractTransport struct {
	tb   testing.TB
	c    *contract
	base http.RoundTripper
}

// checkContract makes every request sent with hc checked against the
// document. httptest.Server.Client returns one shared *http.Client, so
// wrapping its transport covers every test that talks to the instance.
func checkContract(tb testing.TB, hc *http.Client) {
	tb.Helper()
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = &contractTransport{tb: tb, c: loadContract(tb), base: base}
}

// RoundTrip sends req, then reads the response in full and judges it.
func (t *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	res, err := t.base.RoundTrip(req)
	if err != nil {
		return res, err
	}
	respBody, err := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(respBody))
	if err != nil {
		// A cut connection (fault tests) is not the document's business.
		return res, nil
	}
	f := t.c.judge(req, body, res.StatusCode, res.Header, respBody)
	for _, msg := range f.response {
		t.tb.Errorf("contract: %s %s → %d: %s", req.Method, req.URL.RequestURI(), res.StatusCode, msg)
	}
	if msg := agreement(f, res.StatusCode, respBody); msg != "" {
		t.tb.Errorf("contract: %s %s → %d: %s", req.Method, req.URL.RequestURI(), res.StatusCode, msg)
	}
	return res, nil
}

// CloseIdleConnections passes on to the wrapped transport, as
// http.Client.CloseIdleConnections expects.
func (t *contractTransport) CloseIdleConnections() {
	if ci, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// agreement compares the server's judgement of a request with the
// document's: a request the server served must be one the document allows;
// one the document allows must not get the server's "bad request" (400,
// 413, 415). Other refusals (401, 403, 404, 409, 429, 503) depend on state
// the document cannot see.
func agreement(f contractFinding, status int, respBody []byte) string {
	if f.route == "" {
		return ""
	}
	switch {
	case status < 400 && f.request != nil:
		return "the server accepted a request the document refuses: " + oneLine(f.request.Error())
	case (status == 400 || status == 413 || status == 415) && f.request == nil:
		if status == 400 && isBeyondSchema(f.route, respBody) {
			return ""
		}
		return "the server refused a request the document allows: " + oneLine(string(respBody))
	}
	return ""
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}
