package httpcache

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/theaterscriptpro/tsp/redisx"
)

// Key says which parts of a request make its cache key, and so which parts
// the handler is allowed to see when its response may be stored: a query
// parameter that is not part of the key is removed from the request the
// handler gets, so it cannot change what is stored for everybody (cache
// poisoning through unkeyed input). Make one with Request, Resource, List
// or Func; the zero Key is Request().
type Key struct {
	namespace string
	pathValue string   // Resource: the path wildcard that is the id
	path      bool     // Request: method and path are part of the id
	query     []string // allowed query parameters, sorted; nil means none...
	allQuery  bool     // ...unless every parameter is part of the key
	fn        func(*http.Request) (string, bool)
	made      bool // by a constructor: the zero Key means Request()
}

// Request keys on method, path and query parameters (sorted by name, the
// values of one name in their order), in the namespace "http". With no
// allowed names every parameter is part of the key; with some, only those
// are, and the handler sees only those. This is the default Key.
func Request(allowed ...string) Key {
	k := Key{namespace: "http", path: true, made: true}
	if len(allowed) == 0 {
		k.allQuery = true
	} else {
		k.query = sortedSet(allowed)
	}
	return k
}

// Resource keys one resource by a path wildcard, like the original guide's
// cacheKeyGenerators.resource('script', 'id'): Resource("script", "id") on
// the route "GET /api/scripts/{id}" stores under the same key as
// redisx.Keys.Tagged("script", id), "script:{id}". The query is not part of the key,
// so the handler sees none. Entries carry ResourceTag(namespace, id).
func Resource(namespace, param string) Key {
	return Key{namespace: namespace, pathValue: param, made: true}
}

// List keys a list page by its normalised query parameters, in the
// namespace namespace+":list": List("scripts", "page", "limit") stores
// "/api/scripts?limit=5&page=2&utm=x" under the same key as
// redisx.Keys.Tagged("scripts:list", "limit=5&page=2"). Only the allowed parameters
// are part of the key and reach the handler.
func List(namespace string, allowed ...string) Key {
	return Key{namespace: namespace + ":list", query: sortedSet(allowed), made: true}
}

// Func keys with a function of the caller's: id returns the part of the key
// after the namespace, or false to leave the request uncached. The handler
// gets the request as it came (minus the unkeyed headers every route
// strips), so id must cover everything the response depends on.
func Func(namespace string, id func(*http.Request) (string, bool)) Key {
	return Key{namespace: namespace, fn: id, made: true}
}

// Namespace returns the namespace the Key stores under ("http" for the zero
// Key).
func (k Key) Namespace() string {
	if k.isZero() {
		return "http"
	}
	return k.namespace
}

func (k Key) isZero() bool {
	return !k.made
}

func (k Key) orDefault() Key {
	if k.isZero() {
		return Request()
	}
	return k
}

func (k Key) validate() error {
	if err := checkNamespace(k.namespace); err != nil {
		return err
	}
	if k.pathValue == "" && !k.path && k.fn == nil && k.query == nil {
		return fmt.Errorf("key %q: List needs at least one allowed query parameter and Func an id function", k.namespace)
	}
	for _, q := range k.query {
		if q == "" {
			return fmt.Errorf("key %q: empty query parameter name", k.namespace)
		}
	}
	return nil
}

// checkNamespace allows what redisx.Keys.Tagged may put in a key as it is:
// the namespace is not escaped, so it must not contain braces (a second
// hash tag), glob characters, or '=' (which ResourceTag uses as separator).
func checkNamespace(ns string) error {
	if ns == "" || len(ns) > 64 {
		return fmt.Errorf("namespace %q must be 1 to 64 bytes", ns)
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == ':' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("namespace %q: character %q not allowed (letters, digits and :-_. only)", ns, c)
		}
	}
	if ns[0] == ':' || ns[len(ns)-1] == ':' || strings.Contains(ns, "::") {
		return fmt.Errorf("namespace %q: empty segment", ns)
	}
	return nil
}

// id returns the request's id within the namespace. It is injective over
// what the handler can see of the keyed parts: two requests get one id only
// when method, path (Request), path value (Resource) and the parsed, allowed
// query parameters are equal.
func (k Key) id(r *http.Request) (string, bool) {
	switch {
	case k.fn != nil:
		return k.fn(r)
	case k.pathValue != "":
		v := r.PathValue(k.pathValue)
		return v, v != ""
	}
	q, ok := k.canonicalQuery(r.URL.RawQuery)
	if !ok {
		return "", false
	}
	if !k.path {
		return q, true
	}
	// The method is a token (no space) and the escaped path never holds a
	// raw '?', so the three parts can be told apart. EscapedPath, not
	// Path: "/a%2Fb" and "/a/b" route differently in http.ServeMux.
	var b strings.Builder
	p := r.URL.EscapedPath()
	m := r.Method
	if m == http.MethodHead {
		m = http.MethodGet // HEAD is answered from the GET entry
	}
	b.Grow(len(m) + len(p) + len(q) + 2)
	b.WriteString(m)
	b.WriteByte(' ')
	b.WriteString(p)
	b.WriteByte('?')
	b.WriteString(q)
	return b.String(), true
}

// canonicalQuery returns the keyed query parameters sorted by name, each
// "name=value" query-escaped (so '&' and '=' only ever separate), values of
// one name in their order. Pairs that do not parse are dropped, as
// url.ParseQuery drops them; the handler gets this canonical query in place
// of the raw one (see handlerQuery), so what it cannot see cannot change
// the response.
func (k Key) canonicalQuery(raw string) (string, bool) {
	if raw == "" || !k.allQuery && len(k.query) == 0 {
		return "", true
	}
	vals, _ := url.ParseQuery(raw) // keeps every pair that parses
	names := make([]string, 0, len(vals))
	for n := range vals {
		if k.allQuery || slices.Contains(k.query, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		for _, v := range vals[n] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(n))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
		}
	}
	return b.String(), true
}

// handlerQuery returns the query the handler sees when its response may be
// stored: the canonical keyed query (Func keys: the raw query, which their
// id function must cover), and whether it differs from raw.
func (k Key) handlerQuery(raw string) (string, bool) {
	if k.fn != nil {
		return raw, false
	}
	q, _ := k.canonicalQuery(raw)
	return q, q != raw
}

// NamespaceTag returns the tag every entry in namespace carries: purging it
// drops the whole namespace, which is what the pattern "ns:*" maps to.
func NamespaceTag(namespace string) string { return "ns=" + namespace }

// ResourceTag returns the tag every entry of one resource carries, e.g.
// ResourceTag("script", id) for Resource("script", "id") entries. It is
// what the pattern "script:{id}" maps to. The id is escaped as in keys, so
// two ids never share a tag.
func ResourceTag(namespace, id string) string {
	return resourceTagEscaped(namespace, redisx.EscapeKeyPart(id))
}

// resourceTagEscaped takes the id as it appears inside a key's braces. The
// namespace holds no '=', so the tag is injective.
func resourceTagEscaped(namespace, escapedID string) string {
	return "res=" + namespace + "=" + escapedID
}

func sortedSet(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
