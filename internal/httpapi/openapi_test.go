package httpapi

import (
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// TestOpenAPIMatchesRoutes walks the mux's registered patterns and the
// document's paths both ways, so neither can gain an endpoint alone.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	in := newInstance(t, options{})
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	registered := map[string]bool{}
	for _, r := range in.api.Routes() {
		key := r.Method + " " + r.Pattern
		registered[key] = true
		ops, ok := doc.Paths[r.Pattern]
		if !ok {
			t.Errorf("route %s is not in openapi.json", key)
			continue
		}
		if _, ok := ops[strings.ToLower(r.Method)]; !ok {
			t.Errorf("route %s: openapi.json has the path but not the method", key)
		}
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			key := strings.ToUpper(method) + " " + path
			documented = append(documented, key)
			if !registered[key] {
				t.Errorf("openapi.json documents %s, which the server does not serve", key)
			}
		}
	}
	sort.Strings(documented)
	if len(documented) != len(registered) {
		t.Errorf("%d documented operations, %d registered routes", len(documented), len(registered))
	}
}

// TestOpenAPIRefsResolve checks that every $ref points at something.
func TestOpenAPIRefsResolve(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`"\$ref":\s*"#/([^"]+)"`).FindAllStringSubmatch(string(OpenAPI()), -1)
	if len(refs) == 0 {
		t.Fatal("no $ref found: the pattern is wrong")
	}
	for _, m := range refs {
		var node any = doc
		for _, part := range strings.Split(m[1], "/") {
			obj, ok := node.(map[string]any)
			if !ok {
				node = nil
				break
			}
			node = obj[part]
		}
		if node == nil {
			t.Errorf("$ref #/%s does not resolve", m[1])
		}
	}
}

// TestOpenAPIGenresMatchDomain: the document's genre list is the domain's,
// so adding a genre in internal/theater cannot leave the contract behind.
func TestOpenAPIGenresMatchDomain(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				Genre struct {
					Enum []string `json:"enum"`
				} `json:"Genre"`
				GenreInput struct {
					Pattern string `json:"pattern"`
				} `json:"GenreInput"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if got, want := doc.Components.Schemas.Genre.Enum, theater.Genres(); !slices.Equal(got, want) {
		t.Fatalf("Genre enum %v, want theater.Genres() %v", got, want)
	}
	c := loadContract(t)
	for _, g := range theater.Genres() {
		for _, v := range []string{g, strings.ToUpper(g), " " + g + "\t"} {
			if err := c.validate("/components/schemas/GenreInput", v); err != nil {
				t.Errorf("GenreInput refuses %q, which the server takes: %v", v, err)
			}
		}
	}
	for _, v := range []string{"", "dramas", "drama drama", "*", "comédie"} {
		if err := c.validate("/components/schemas/GenreInput", v); err == nil {
			t.Errorf("GenreInput accepts %q, which the server refuses", v)
		}
	}
}
