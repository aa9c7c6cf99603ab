package main

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/config"
)

// TestEnvExample checks that ../../.env.example names every variable the
// config package documents, and that its active values load cleanly.
func TestEnvExample(t *testing.T) {
	f, err := os.Open("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	named := map[string]bool{}
	values := map[string]string{}
	line := regexp.MustCompile(`^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := line.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		named[m[2]] = true
		if m[1] == "" {
			v, _, _ := strings.Cut(m[3], "#")
			values[m[2]] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../internal/config/config.go")
	if err != nil {
		t.Fatal(err)
	}
	documented := regexp.MustCompile("(?m)^//\\s*\\| `([A-Z][A-Z0-9_]*)`").FindAllStringSubmatch(string(src), -1)
	if len(documented) < 10 {
		t.Fatalf("found %d documented variables in internal/config: the pattern is stale", len(documented))
	}
	for _, d := range documented {
		if !named[d[1]] {
			t.Errorf(".env.example does not mention %s", d[1])
		}
	}
	if _, err := config.Load(func(k string) string { return values[k] }); err != nil {
		t.Fatalf(".env.example does not load:\n%v", err)
	}
}
