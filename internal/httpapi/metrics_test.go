package httpapi

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/theaterscriptpro/tsp/internal/theater"
)

// TestMetricNamesAndRouteLabel checks what dashboards and alerts select on:
// every metric the server registers, its own and the toolkit's, starts with
// MetricPrefix, and the route label is the path pattern alone, the method a
// label of its own.
func TestMetricNamesAndRouteLabel(t *testing.T) {
	in := newInstance(t, options{})
	a := signUp(t, in, theater.RolePlaywright)
	want(t, a.c.do("GET", "/api/me", nil), 200, "me")
	want(t, in.client(t).do("GET", "/api/scripts", nil), 200, "list")
	want(t, in.client(t).do("PATCH", "/api/scripts", nil), 405, "PATCH list")

	mfs, err := in.api.deps.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{} // "method route"
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), MetricPrefix) {
			t.Errorf("metric %s lacks the prefix %s", mf.GetName(), MetricPrefix)
		}
		if mf.GetName() != MetricPrefix+"http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var method, route string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "method":
					method = l.GetValue()
				case "route":
					route = l.GetValue()
				}
			}
			if strings.Contains(route, " ") {
				t.Errorf("route label %q carries the method", route)
			}
			routes[method+" "+route] = true
		}
	}
	for _, r := range []string{"POST /api/auth/register", "POST /api/auth/login", "GET /api/me", "GET /api/scripts", "PATCH /api/scripts"} {
		if !routes[r] {
			t.Errorf("no tsp_http_request_duration_seconds series for method and route %s; have %v", r, routes)
		}
	}
}

// TestMetricsLint runs client_golang's promlint over everything the server
// registers, toolkit included: names, units, suffixes and help texts
// follow the Prometheus conventions, or the test says which do not.
func TestMetricsLint(t *testing.T) {
	in := newInstance(t, options{})
	a := signUp(t, in, theater.RolePlaywright)
	want(t, a.c.do("GET", "/api/me", nil), 200, "me")
	want(t, in.client(t).do("GET", "/api/scripts", nil), 200, "list")
	problems, err := testutil.GatherAndLint(in.api.deps.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if len(problems) == 0 {
		t.Logf("promlint: no problems")
	}
}
