package session

import (
	"fmt"
	"testing"
)

// decodeRecord's memo must be invisible: the same answers as decoding, a
// caller's change to Attrs reaching no other caller, and records that
// share a slot never mixed up.
func TestDecodeRecordMemo(t *testing.T) {
	_, js, err := encodeRecord("ann@example.org", "producer", "curl/8", "192.0.2.1", map[string]string{"theme": "dark"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := decodeRecord(js)
	if err != nil {
		t.Fatal(err)
	}
	first.Attrs["theme"] = "changed by the first caller"
	second, err := decodeRecord(js)
	if err != nil {
		t.Fatal(err)
	}
	if second.Email != "ann@example.org" || second.Role != "producer" || second.UserAgent != "curl/8" ||
		second.IP != "192.0.2.1" || second.Attrs["theme"] != "dark" {
		t.Fatalf("second decode of the same record: %+v; want it as stored, untouched by the first caller", second)
	}

	// More records than slots: every one decodes to itself.
	for i := range 3 * len(decodedRecords) {
		email := fmt.Sprintf("user%d@example.org", i)
		_, js, err := encodeRecord(email, "playwright", "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			rec, err := decodeRecord(js)
			if err != nil || rec.Email != email || rec.Attrs != nil {
				t.Fatalf("decodeRecord(%s) = %+v, %v; want email %s and no attrs", js, rec, err, email)
			}
		}
	}

	for _, bad := range []string{"", "{", `{"em":1}`, "null garbage", `{"at":{"k":2}}`} {
		if _, err := decodeRecord(bad); err == nil {
			t.Errorf("decodeRecord(%q): no error", bad)
		}
	}
}
