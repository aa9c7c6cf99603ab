package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"
)

// alertRules is the shape of a Prometheus rule file, as far as the checks
// below read it.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// metricName finds what looks like a metric name of the service or of the
// standard Go collectors in PromQL; `up` and other Prometheus-made series
// are not the service's to export.
var metricName = regexp.MustCompile(`\b(?:tsp|go|process)_[a-z0-9_]+`)

// readAlerts decodes deploy/prometheus/alerts.yml strictly and checks every
// rule is complete; it returns each rule's expression by alert name.
func readAlerts(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true) // a misspelt key ("annotation:") is an error, not ignored
	var rules alertRules
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	exprs := map[string]string{}
	for _, g := range rules.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("alerts.yml: group %q has no name or no rules", g.Name)
		}
		for _, r := range g.Rules {
			switch {
			case r.Alert == "" || strings.TrimSpace(r.Expr) == "":
				t.Errorf("alerts.yml: group %s: a rule without alert or expr: %+v", g.Name, r)
			case exprs[r.Alert] != "":
				t.Errorf("alerts.yml: alert %s defined twice", r.Alert)
			case !slices.Contains([]string{"critical", "warning"}, r.Labels["severity"]):
				t.Errorf("alerts.yml: %s: severity %q, want critical or warning", r.Alert, r.Labels["severity"])
			case r.Annotations["summary"] == "" || r.Annotations["description"] == "":
				t.Errorf("alerts.yml: %s lacks a summary or a description", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alerts.yml: %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			exprs[r.Alert] = r.Expr
		}
	}
	if len(exprs) == 0 {
		t.Fatal("alerts.yml has no rules")
	}
	return exprs
}

// readDashboard returns every PromQL query of deploy/grafana/theaterd.json
// (panel targets and template variables) by where it is.
func readDashboard(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/theaterd.json")
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr string `json:"expr"`
	}
	type panel struct {
		Title   string   `json:"title"`
		Type    string   `json:"type"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var d struct {
		UID        string  `json:"uid"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("theaterd.json: %v", err)
	}
	if d.UID == "" {
		t.Error("theaterd.json has no uid: every import would make a new dashboard")
	}
	exprs := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("theaterd.json: panel %q has no query", p.Title)
			}
			for i, tg := range p.Targets {
				exprs[p.Title+"#"+string(rune('A'+i))] = tg.Expr
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			exprs["variable "+v.Name] = v.Definition
		}
	}
	if len(exprs) == 0 {
		t.Fatal("theaterd.json has no queries")
	}
	return exprs
}

// TestDeployFilesUseExportedMetrics runs theaterd through every Redis-side
// path of the API, then checks that every metric named by the alert rules
// and the dashboard is one its /metrics serves: a renamed metric must not
// leave an alert that can never fire or a panel that stays empty.
func TestDeployFilesUseExportedMetrics(t *testing.T) {
	used := map[string][]string{} // metric name → where it is used
	for where, exprs := range map[string]map[string]string{"alerts.yml": readAlerts(t), "theaterd.json": readDashboard(t)} {
		for name, expr := range exprs {
			for _, m := range metricName.FindAllString(expr, -1) {
				used[m] = append(used[m], where+": "+name)
			}
		}
	}

	addr, maddr := freeAddr(t), freeAddr(t)
	_, out := start(t, "HTTP_ADDR="+addr, "METRICS_ADDR="+maddr, "REDIS_URL="+redisURL(t),
		"RATE_LIMIT_LOGIN=3/1m", "SHUTDOWN_DELAY=0s")
	waitFor(t, "http://"+addr+"/readyz", 200, out)
	tour(t, "http://"+addr, out)

	// Samples as scraped: a histogram's are name_bucket, name_sum and
	// name_count, which is how queries name them too. Some series appear
	// only once background work has run (view flushes, cache warming).
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		status, body, err := get("http://" + maddr + "/metrics")
		if err != nil || status != 200 {
			t.Fatalf("/metrics: %d, %v", status, err)
		}
		scraped := map[string]bool{}
		for _, line := range strings.Split(body, "\n") {
			if line == "" || line[0] == '#' {
				continue
			}
			if i := strings.IndexAny(line, "{ "); i > 0 {
				scraped[line[:i]] = true
			}
		}
		missing = missing[:0]
		for name := range used {
			if !scraped[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	slices.Sort(missing)
	for _, name := range missing {
		t.Errorf("%s is not on /metrics; used by %v", name, used[name])
	}
	if len(used) < 20 {
		t.Errorf("only %d metric names found in the deploy files; the check proves little", len(used))
	}
}
