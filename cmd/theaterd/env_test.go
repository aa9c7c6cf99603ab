package main

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/config"
)

// TestEnvExample checks that ../../.env.example names every variable of
// config.Vars, that the values it sets are the defaults, and that they load.
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
	for _, v := range config.Vars {
		if !named[v.Name] {
			t.Errorf(".env.example does not mention %s", v.Name)
		}
		if got, set := values[v.Name]; set && got != v.Default {
			t.Errorf(".env.example sets %s=%s; the default is %q", v.Name, got, v.Default)
		}
	}
	if _, err := config.Load(func(k string) string { return values[k] }); err != nil {
		t.Fatalf(".env.example does not load:\n%v", err)
	}
}
