package httpapi

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDrainMakesReadyz503 checks that after Drain /readyz answers 503
// "shutting down" although Redis and the database are up, while the API
// itself still serves.
func TestDrainMakesReadyz503(t *testing.T) {
	in := newInstance(t, options{})
	c := in.client(t)
	want(t, c.do("GET", "/readyz", nil), 200, "readyz before Drain")
	in.api.Drain()
	r := c.do("GET", "/readyz", nil)
	want(t, r, 503, "readyz after Drain")
	var p map[string]any
	r.json(t, &p)
	if p["detail"] != "shutting down" || p["redis"] != "ok" || p["database"] != "ok" {
		t.Fatalf("readyz after Drain = %v; want detail \"shutting down\", redis and database ok", p)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q; want application/problem+json", ct)
	}
	want(t, c.do("GET", "/healthz", nil), 200, "healthz while draining")
	want(t, c.do("GET", "/api/scripts", nil), 200, "the API while draining")
}

// TestPrivateMetrics checks that with PrivateMetrics the API's handler has
// no /metrics (404) and MetricsHandler serves the metrics instead.
func TestPrivateMetrics(t *testing.T) {
	in := newInstance(t, options{edit: func(d *Deps) { d.PrivateMetrics = true }})
	c := in.client(t)
	want(t, c.do("GET", "/api/scripts", nil), 200, "list")
	want(t, c.do("GET", "/metrics", nil), 404, "/metrics on the API's port")
	for _, rt := range in.api.Routes() {
		if rt.Pattern == "/metrics" {
			t.Errorf("Routes() still lists /metrics")
		}
	}
	priv := httptest.NewServer(in.api.MetricsHandler())
	defer priv.Close()
	res, err := priv.Client().Get(priv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("private /metrics: %d, %v", res.StatusCode, err)
	}
	if !strings.Contains(string(body), "# TYPE ") || !strings.Contains(string(body), "/api/scripts") {
		t.Fatalf("private /metrics has not the API's metrics:\n%.500s", body)
	}
}
