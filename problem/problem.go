// Package problem writes HTTP errors as RFC 9457 problem details
// (application/problem+json): {"type","title","status","detail"}. Every
// error the service and its middleware send goes through it, so no error
// ever carries a stack trace, SQL text or a Redis error string — only what
// the caller put in Detail.
//
//	problem.Write(w, problem.Details{Status: 429, Detail: "too many requests, retry in 12 s"})
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ContentType is the media type of a problem details body.
const ContentType = "application/problem+json"

// Details is one problem. Type defaults to "about:blank" and Title to the
// status text, as RFC 9457 says for problems with no type of their own.
type Details struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Field names the request field at fault, where there is one.
	Field string `json:"field,omitempty"`
}

// Write sends p with its status. Detail must be safe to show to anyone.
func Write(w http.ResponseWriter, p Details) {
	if p.Status < 400 || p.Status > 599 {
		p.Status = http.StatusInternalServerError
	}
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	body, err := json.Marshal(p)
	if err != nil { // cannot happen with string and int fields
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	// An error is about this request only: no cache may keep it.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

// Error is Write with a status and a detail.
func Error(w http.ResponseWriter, status int, detail string) {
	Write(w, Details{Status: status, Detail: detail})
}
