package problem_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/theaterscriptpro/tsp/problem"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		in         problem.Details
		wantStatus int
		wantTitle  string
	}{
		{"defaults title and type", problem.Details{Status: 404, Detail: "no script with that id"}, 404, "Not Found"},
		{"keeps a title", problem.Details{Status: 429, Title: "Slow down"}, 429, "Slow down"},
		{"refuses a success status", problem.Details{Status: 200}, 500, "Internal Server Error"},
		{"refuses a nonsense status", problem.Details{Status: 42}, 500, "Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			problem.Write(rec, tt.in)
			if rec.Code != tt.wantStatus {
				t.Errorf("status: got %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Content-Type"); got != problem.ContentType {
				t.Errorf("Content-Type: got %q, want %q", got, problem.ContentType)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control: got %q, want no-store", got)
			}
			var body problem.Details
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if body.Type != "about:blank" || body.Title != tt.wantTitle || body.Status != tt.wantStatus || body.Detail != tt.in.Detail {
				t.Errorf("body: got %+v", body)
			}
			if got, want := rec.Header().Get("Content-Length"), len(rec.Body.Bytes()); got != itoa(want) {
				t.Errorf("Content-Length: got %s, want %d", got, want)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
