package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// member is one member of a JSON object body, its value raw JSON.
type member struct{ name, value string }

func objectOf(ms []member) []byte {
	parts := make([]string, len(ms))
	for i, m := range ms {
		n, _ := json.Marshal(m.name)
		parts[i] = string(n) + ":" + m.value
	}
	return []byte("{" + strings.Join(parts, ",") + "}")
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// hostileValues derives, from the schema at ptr, values that probe each of
// its rules: the wrong type, just outside each bound, outside the enum or
// pattern, control characters, case changes. Some are valid (the bounds
// themselves, white space the server trims): the point is that the server
// and the document judge each alike, whichever way that is.
func (c *contract) hostileValues(ptr string) []string {
	_, s := c.deref(ptr)
	num := func(k string) (int, bool) {
		f, ok := s[k].(json.Number)
		if !ok {
			return 0, false
		}
		n, err := strconv.Atoi(string(f))
		return n, err == nil
	}
	var out []string
	switch s["type"] {
	case "integer":
		out = append(out, `"1"`, `1.5`, `-1`, `0`, `1e30`, `99999999999999999999`, `true`, `null`)
		if lo, ok := num("minimum"); ok {
			out = append(out, strconv.Itoa(lo-1), strconv.Itoa(lo))
		}
		if hi, ok := num("maximum"); ok {
			out = append(out, strconv.Itoa(hi), strconv.Itoa(hi+1))
		}
	default: // strings, enums, patterns
		out = append(out, `12`, `["x"]`, `{}`, `null`, `""`, `"   "`, jsonString("a\u0001b"), jsonString("\tpadded\n"),
			jsonString("x\u2028y"), jsonString("\u00e9t\u00e9"), `"<script>"`, `"../x"`)
		if hi, ok := num("maxLength"); ok {
			out = append(out, jsonString(strings.Repeat("x", hi)), jsonString(strings.Repeat("x", hi+1)))
		}
		if enum, ok := s["enum"].([]any); ok {
			for _, e := range enum {
				v, _ := e.(string)
				out = append(out, jsonString(v), jsonString(strings.ToUpper(v)))
			}
		}
	}
	return out
}

// TestContractHostileRequests sends requests generated from openapi.json,
// valid ones and hostile ones (every body member missing, mistyped,
// case-folded, duplicated, at and past each bound; every list parameter
// malformed or repeated; structural garbage), through the checking client,
// which fails the test wherever the server and the document judge a
// request differently. Case-folded member names must get 400 naming the
// member as sent.
func TestContractHostileRequests(t *testing.T) {
	t.Parallel()
	in := newInstance(t, options{})
	c := loadContract(t)
	author := signUp(t, in, theater.RolePlaywright)
	r := author.c.do("POST", "/api/scripts", scriptBody("Contract"))
	want(t, r, http.StatusCreated, "seed script")
	var sc theater.Script
	r.json(t, &sc)

	future := time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	type op struct {
		method, path, template string
		signedIn               bool
		base                   func() []member
	}
	ops := []op{
		{"POST", "/api/auth/register", "/api/auth/register", false, func() []member {
			return []member{{"email", jsonString(uniqueEmail("contract"))}, {"password", `"correct horse battery"`}, {"name", `"Contract"`}, {"role", `"producer"`}}
		}},
		{"POST", "/api/auth/login", "/api/auth/login", false, func() []member {
			return []member{{"email", jsonString(author.email)}, {"password", jsonString(author.pass)}}
		}},
		{"POST", "/api/scripts", "/api/scripts", true, func() []member {
			return []member{{"title", `"A play"`}, {"genre", `"drama"`}, {"synopsis", `"Two people wait."`}, {"castMin", `2`}, {"castMax", `4`}, {"durationMinutes", `90`}, {"language", `"en"`}}
		}},
		{"PUT", "/api/scripts/" + sc.ID, "/api/scripts/{id}", true, func() []member {
			return []member{{"title", `"Contract"`}, {"genre", `"comedy"`}, {"synopsis", `""`}, {"castMin", `1`}, {"castMax", `1`}, {"durationMinutes", `600`}, {"language", `"pt-BR"`}}
		}},
		{"POST", "/api/scripts/" + sc.ID + "/licenses", "/api/scripts/{id}/licenses", true, func() []member {
			return []member{{"type", `"performance"`}, {"performances", `3`}, {"startsAt", `""`}, {"endsAt", jsonString(future)}}
		}},
	}
	statuses := map[int]int{}
	sent := 0
	send := func(o op, body []byte, what string) resp {
		sent++
		cl := in.client(t)
		if o.signedIn {
			cl = author.c
		}
		r := cl.raw(o.method, o.path, body)
		statuses[r.status]++
		if r.status >= 500 {
			t.Errorf("%s %s %s: status %d: %s", o.method, o.path, what, r.status, r.body)
		}
		return r
	}
	for _, o := range ops {
		schemaPtr := pointer(pointer("", "paths", o.template, strings.ToLower(o.method)), "requestBody", "content", "application/json", "schema")
		sPtr, _ := c.deref(schemaPtr)
		props, _ := c.node(pointer(sPtr, "properties")).(map[string]any)
		if len(props) == 0 {
			t.Fatalf("%s %s: no properties at %s", o.method, o.template, sPtr)
		}
		send(o, objectOf(o.base()), "valid")
		for _, raw := range []string{``, `null`, `[]`, `"x"`, `{`, `{}`, `{} {}`, `{"isAdmin":true}`} {
			send(o, []byte(raw), "body "+raw)
		}
		names := make([]string, 0, len(props))
		for n := range props {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			without := []member{}
			var value string
			for _, m := range o.base() {
				if m.name == name {
					value = m.value
					continue
				}
				without = append(without, m)
			}
			send(o, objectOf(without), name+" missing")
			send(o, objectOf(append(o.base(), member{name, value})), name+" twice")
			for _, folded := range []string{strings.ToUpper(name[:1]) + name[1:], strings.ToUpper(name)} {
				if folded == name {
					continue
				}
				r := send(o, objectOf(append(without, member{folded, value})), name+" as "+folded)
				wantField(t, r, folded, fmt.Sprintf("%s %s with %q for %q", o.method, o.path, folded, name))
			}
			for _, v := range c.hostileValues(pointer(sPtr, "properties", name)) {
				send(o, objectOf(append(without, member{name, v})), name+" = "+v)
			}
		}
	}

	// The list's query parameters, each malformed and repeated.
	listOp := op{"GET", "", "/api/scripts", false, nil}
	params, _ := c.node(pointer("", "paths", "/api/scripts", "get", "parameters")).([]any)
	for i := range params {
		pPtr, p := c.deref(pointer("", "paths", "/api/scripts", "get", "parameters", strconv.Itoa(i)))
		name, _ := p["name"].(string)
		vals := []string{"", "1", "abc", "0", "-1", "1.5", "101", "100000", "100001", "99999999999999999999",
			"drama", "DRAMA", " drama ", "a\x01b", "../x", strings.Repeat("x", 201), sc.AuthorID, "seag"}
		for _, v := range vals {
			listOp.path = "/api/scripts?" + url.Values{name: {v}}.Encode()
			send(listOp, nil, name+"="+v)
		}
		listOp.path = "/api/scripts?" + name + "=1&" + name + "=2"
		send(listOp, nil, name+" twice")
		_ = pPtr
	}
	t.Logf("%d generated requests; statuses %v", sent, statuses)
	if sent < 300 || statuses[400] == 0 || statuses[200]+statuses[201] == 0 {
		t.Fatalf("%d requests, statuses %v: the generator lost its cases", sent, statuses)
	}
}
