package httpapi

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

// TestDecodeJSONExactFieldNames: a member name is matched byte for byte
// against the request type's json names. encoding/json alone folds case, so
// {"Title":…} was taken as title; and a name given twice let the last copy
// win, so two parsers could read one body two ways.
func TestDecodeJSONExactFieldNames(t *testing.T) {
	tests := []struct {
		name   string
		target func() any
		body   string
		field  string // "" when the body must decode
	}{
		{"script spelled right", func() any { return new(theater.ScriptInput) }, `{"title":"x","castMin":1}`, ""},
		{"script Title", func() any { return new(theater.ScriptInput) }, `{"Title":"x"}`, "Title"},
		{"script TITLE after a good field", func() any { return new(theater.ScriptInput) }, `{"genre":"drama","TITLE":"x"}`, "TITLE"},
		{"script castmin", func() any { return new(theater.ScriptInput) }, `{"castmin":2}`, "castmin"},
		{"script title twice", func() any { return new(theater.ScriptInput) }, `{"title":"a","title":"b"}`, "title"},
		{"licence TYPE", func() any { return new(licenseRequest) }, `{"TYPE":"perusal"}`, "TYPE"},
		{"licence Type with a kelvin sign", func() any { return new(licenseRequest) }, "{\"\u212aype\":\"perusal\"}", "\u212aype"},
		{"login Email", func() any { return new(loginRequest) }, `{"Email":"a@b.c","password":"12345678"}`, "Email"},
		{"login PASSWORD", func() any { return new(loginRequest) }, `{"email":"a@b.c","PASSWORD":"12345678"}`, "PASSWORD"},
		{"register Role", func() any { return new(theater.NewUser) }, `{"email":"a@b.c","password":"12345678","name":"A","Role":"admin"}`, "Role"},
		{"register spelled right", func() any { return new(theater.NewUser) }, `{"email":"a@b.c","password":"12345678","name":"A","role":"producer"}`, ""},
		{"escaped but exact name", func() any { return new(loginRequest) }, `{"\u0065mail":"a@b.c"}`, ""},
		{"nested value is not checked for names", func() any { return new(loginRequest) }, `{"email":{"Email":1}}`, "email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", bytes.NewReader([]byte(tt.body)))
			r.Header.Set("Content-Type", "application/json")
			err := decodeJSON(httptest.NewRecorder(), r, tt.target())
			if tt.field == "" {
				if err != nil {
					t.Fatalf("decode %s: %v, want success", tt.body, err)
				}
				return
			}
			if theater.ErrorCode(err) != theater.EINVALID || theater.ErrorField(err) != tt.field {
				t.Fatalf("decode %s: got %v (field %q), want EINVALID naming %q", tt.body, err, theater.ErrorField(err), tt.field)
			}
		})
	}
}
