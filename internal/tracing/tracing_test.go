package tracing_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/theaterscriptpro/tsp/internal/httpapi"
	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/internal/sqlstore"
	"github.com/theaterscriptpro/tsp/internal/theater"
	"github.com/theaterscriptpro/tsp/internal/tracing"
)

// receiver is an in-process OTLP/HTTP collector: it decodes what the
// exporter posts to /v1/traces, as a real collector would.
type receiver struct {
	mu    sync.Mutex
	spans []*span
	bad   []string
}

// span is a received span, flattened.
type span struct {
	name, traceID string
	kind          tracepb.Span_SpanKind
	attrs         map[string]string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		rc.fail("unexpected " + r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type"))
		http.Error(w, "no", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			rc.fail("gzip: " + err.Error())
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		rc.fail("read: " + err.Error())
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		rc.fail("decode: " + err.Error())
		http.Error(w, "bad protobuf", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				rc.spans = append(rc.spans, &span{name: s.Name, traceID: hex.EncodeToString(s.TraceId), kind: s.Kind, attrs: flatten(s.Attributes)})
			}
		}
	}
	rc.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (rc *receiver) fail(msg string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.bad = append(rc.bad, msg)
}

func flatten(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = strconv.FormatInt(v.IntValue, 10)
		default:
			m[kv.Key] = kv.Value.String()
		}
	}
	return m
}

// trace returns the spans of the trace whose server span carries request
// id, or nil while that server span has not arrived.
func (rc *receiver) trace(id string) (server *span, all []*span) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, s := range rc.spans {
		if s.kind == tracepb.Span_SPAN_KIND_SERVER && s.attrs[tracing.AttrRequestID] == id {
			server = s
		}
	}
	if server == nil {
		return nil, nil
	}
	for _, s := range rc.spans {
		if s.traceID == server.traceID {
			all = append(all, s)
		}
	}
	return server, all
}

// TestTracesOfCachedAndUncachedRequest runs the real server on real Redis
// and SQLite with tracing on, pointed by OTEL_EXPORTER_OTLP_ENDPOINT at an
// in-process receiver: the first read of a script (a cache miss) arrives
// as a server span with Redis and SQL spans under it; the second (a hit)
// as a server span with no SQL span. Every span carries the request id.
func TestTracesOfCachedAndUncachedRequest(t *testing.T) {
	rc := &receiver{}
	collector := httptest.NewServer(rc)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "theaterd-test")

	ctx := context.Background()
	tp, err := tracing.Start(ctx, tracing.Options{RequestID: httpapi.RequestID, BatchTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer tp.Shutdown(ctx)

	cfg := redistest.Config(t)
	cfg.CommandObserver = tracing.RedisObserver(tp)
	rdb := redistest.Connect(t, cfg)
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	author, err := st.CreateUser(ctx, theater.NewUser{Email: "a@example.org", Password: "long enough password", Name: "A", Role: theater.RolePlaywright}, "x")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := st.CreateScript(ctx, author.ID, theater.ScriptInput{Title: "Traced", Genre: "drama", CastMin: 1, CastMax: 2, DurationMinutes: 10, Language: "en"})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Deps{Redis: rdb, Users: st, Scripts: st, Licenses: st, Database: st, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	defer api.Close(ctx)

	get := func(id string) string {
		req, _ := http.NewRequest("GET", srv.URL+"/api/scripts/"+sc.ID, nil)
		req.Header.Set("X-Request-ID", id)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%s: status %d", id, res.StatusCode)
		}
		return res.Header.Get("X-Cache")
	}
	if got := get("trace-miss"); got != "MISS" {
		t.Fatalf("first read: X-Cache %q, want MISS", got)
	}
	if got := get("trace-hit"); got != "HIT" {
		t.Fatalf("second read: X-Cache %q, want HIT", got)
	}
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}

	// The exporter has sent when ForceFlush returns; poll briefly for the
	// receiver's goroutine all the same.
	deadline := time.Now().Add(10 * time.Second)
	var missServer, hitServer *span
	var miss, hit []*span
	for time.Now().Before(deadline) {
		missServer, miss = rc.trace("trace-miss")
		hitServer, hit = rc.trace("trace-hit")
		if missServer != nil && hitServer != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc.mu.Lock()
	if len(rc.bad) > 0 {
		t.Errorf("receiver: %v", rc.bad)
	}
	rc.mu.Unlock()
	if missServer == nil || hitServer == nil {
		t.Fatalf("server spans did not arrive: miss %v, hit %v", missServer != nil, hitServer != nil)
	}
	for _, s := range []*span{missServer, hitServer} {
		if s.name != "GET /api/scripts/{id}" || s.attrs["http.route"] != "/api/scripts/{id}" {
			t.Errorf("server span %q, http.route %q; want GET /api/scripts/{id}", s.name, s.attrs["http.route"])
		}
	}
	count := func(spans []*span, system, id string) (n int) {
		for _, s := range spans {
			if s.attrs["db.system.name"] != system {
				continue
			}
			n++
			if s.attrs[tracing.AttrRequestID] != id {
				t.Errorf("%s span %q: request id %q, want %q", system, s.name, s.attrs[tracing.AttrRequestID], id)
			}
			if s.kind != tracepb.Span_SPAN_KIND_CLIENT {
				t.Errorf("%s span %q: kind %v, want client", system, s.name, s.kind)
			}
		}
		return n
	}
	names := func(spans []*span) (out []string) {
		for _, s := range spans {
			out = append(out, s.name)
		}
		return out
	}
	if n := count(miss, "redis", "trace-miss"); n == 0 {
		t.Errorf("miss: no Redis span in %v", names(miss))
	}
	if n := count(miss, "sqlite", "trace-miss"); n == 0 {
		t.Errorf("miss: no SQL span in %v", names(miss))
	}
	if n := count(hit, "sqlite", "trace-hit"); n != 0 {
		t.Errorf("hit: %d SQL spans in %v, want none (the entry came from the cache)", n, names(hit))
	}
	count(hit, "redis", "trace-hit")
	t.Logf("miss trace: %v", names(miss))
	t.Logf("hit trace:  %v", names(hit))
}
