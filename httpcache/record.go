package httpcache

import (
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"strconv"
	"unsafe"
)

// A record is one stored response, encoded once when stored and replayed
// byte for byte on every hit. Decoding never copies: every field is a
// substring of the string Redis returned, so a hit allocates only what
// http.Header needs.
//
// Layout, version 1 (integers big-endian, lengths as minimal uvarints):
//
//	version  1 byte  (1)
//	flags    1 byte  (0; reserved)
//	status   2 bytes (100-999)
//	stored   8 bytes (Unix ms by the storing instance's clock, for Age)
//	ttl      uvarint ms (how long the entry is fresh)
//	etag     len + bytes (a valid entity-tag)
//	tags     count, then per tag: len + bytes, epoch (uvarint)
//	headers  count, then per header: len + name, len + value
//	         (canonical names, sorted; Content-Length always present and
//	         equal to the body's length)
//	body     len + bytes
//	crc      4 bytes: CRC-32C of everything before it
//
// A record that is truncated, corrupt, of another version or inconsistent
// decodes as not ok: a miss, never a panic and never a wrong body.
type record struct {
	status   int
	storedMs int64
	ttlMs    int64
	etag     string
	nTags    int
	tags     string // nTags × (len, tag, epoch)
	nHeaders int
	headers  string // nHeaders × (len, name, len, value)
	body     string
}

const (
	recordVersion = 1
	recordFixed   = 1 + 1 + 2 + 8
	crcLen        = 4
	maxTags       = 64
	maxTagLen     = 1024
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// tagEpoch is a tag with the purge epoch read before the handler ran.
type tagEpoch struct {
	tag   string
	epoch int64
}

type headerField struct{ name, value string }

// encodeRecord builds the stored bytes. headers must be canonical, valid and
// sorted by name (see storedHeaders); Content-Length is added here.
func encodeRecord(status int, storedMs, ttlMs int64, etag string, tags []tagEpoch, headers []headerField, body []byte) []byte {
	size := recordFixed + 10 + 10 + len(etag) + 10 + 10 + 10 + len(body) + crcLen + 32
	for _, t := range tags {
		size += 20 + len(t.tag)
	}
	for _, h := range headers {
		size += 20 + len(h.name) + len(h.value)
	}
	b := make([]byte, recordFixed, size)
	b[0] = recordVersion
	binary.BigEndian.PutUint16(b[2:], uint16(status))
	binary.BigEndian.PutUint64(b[4:], uint64(storedMs))
	b = binary.AppendUvarint(b, uint64(ttlMs))
	b = appendString(b, etag)
	b = binary.AppendUvarint(b, uint64(len(tags)))
	for _, t := range tags {
		b = appendString(b, t.tag)
		b = binary.AppendUvarint(b, uint64(t.epoch))
	}
	cl := strconv.Itoa(len(body))
	n, clDone := len(headers)+1, false
	b = binary.AppendUvarint(b, uint64(n))
	for _, h := range headers {
		if !clDone && h.name > "Content-Length" {
			b = appendString(appendString(b, "Content-Length"), cl)
			clDone = true
		}
		b = appendString(appendString(b, h.name), h.value)
	}
	if !clDone {
		b = appendString(appendString(b, "Content-Length"), cl)
	}
	b = binary.AppendUvarint(b, uint64(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeRecord checks the checksum and parses s.
func decodeRecord(s string) (record, bool) {
	if len(s) < recordFixed+crcLen {
		return record{}, false
	}
	n := len(s) - crcLen
	sum := uint32(s[n])<<24 | uint32(s[n+1])<<16 | uint32(s[n+2])<<8 | uint32(s[n+3])
	if crc32Update(s[:n]) != sum {
		return record{}, false
	}
	return parseRecord(s[:n])
}

// crc32Update checksums a string without copying it. The bytes are only
// read, so viewing the immutable string as a slice is safe; a copy would
// cost a hit an allocation and a pass over the body.
func crc32Update(s string) uint32 {
	return crc32.Checksum(unsafe.Slice(unsafe.StringData(s), len(s)), castagnoli)
}

// parseRecord parses a record without its checksum. It checks everything a
// replay relies on, so a hit can write the headers without checking again.
func parseRecord(s string) (record, bool) {
	var r record
	if len(s) < recordFixed || s[0] != recordVersion || s[1] != 0 {
		return r, false
	}
	r.status = int(s[2])<<8 | int(s[3])
	if r.status < 100 || r.status > 999 {
		return r, false
	}
	var u uint64
	for i := 4; i < 12; i++ {
		u = u<<8 | uint64(s[i])
	}
	r.storedMs = int64(u)
	p := parser{s: s, i: recordFixed}
	ttl, ok := p.uvarint()
	if !ok || ttl > 1<<40 {
		return r, false
	}
	r.ttlMs = int64(ttl)
	if r.etag, ok = p.str(); !ok || !validETag(r.etag) {
		return r, false
	}
	nt, ok := p.uvarint()
	if !ok || nt > maxTags {
		return r, false
	}
	r.nTags = int(nt)
	start := p.i
	for range r.nTags {
		t, ok := p.str()
		if !ok || len(t) > maxTagLen {
			return r, false
		}
		if e, ok := p.uvarint(); !ok || e > 1<<62 {
			return r, false
		}
	}
	r.tags = s[start:p.i]
	nh, ok := p.uvarint()
	if !ok || nh > uint64(len(s)) || nh == 0 {
		return r, false
	}
	r.nHeaders = int(nh)
	start = p.i
	prev, cl := "", ""
	for range r.nHeaders {
		name, ok1 := p.str()
		value, ok2 := p.str()
		if !ok1 || !ok2 || !canonicalToken(name) || !validValue(value) || name < prev {
			return r, false
		}
		if name == "Content-Length" {
			if cl != "" {
				return r, false
			}
			cl = value
		}
		prev = name
	}
	r.headers = s[start:p.i]
	if r.body, ok = p.str(); !ok || p.i != len(s) {
		return r, false
	}
	if cl != strconv.Itoa(len(r.body)) {
		return r, false
	}
	return r, true
}

type parser struct {
	s string
	i int
}

// uvarint reads a minimal uvarint: a longer encoding of the same number is
// refused, so every record has exactly one encoding.
func (p *parser) uvarint() (uint64, bool) {
	var x uint64
	for shift, n := uint(0), 0; p.i+n < len(p.s) && n < binary.MaxVarintLen64; shift, n = shift+7, n+1 {
		c := p.s[p.i+n]
		if c < 0x80 {
			if n == binary.MaxVarintLen64-1 && c > 1 || n > 0 && c == 0 {
				return 0, false
			}
			p.i += n + 1
			return x | uint64(c)<<shift, true
		}
		x |= uint64(c&0x7f) << shift
	}
	return 0, false
}

func (p *parser) str() (string, bool) {
	n, ok := p.uvarint()
	if !ok || n > uint64(len(p.s)-p.i) {
		return "", false
	}
	s := p.s[p.i : p.i+int(n)]
	p.i += int(n)
	return s, true
}

// tagIter walks a record's tags; the record was checked by parseRecord.
type tagIter struct {
	p     parser
	left  int
	tag   string
	epoch int64
}

func (r *record) tagIter() tagIter { return tagIter{p: parser{s: r.tags}, left: r.nTags} }

func (it *tagIter) next() bool {
	if it.left == 0 {
		return false
	}
	it.left--
	it.tag, _ = it.p.str()
	e, _ := it.p.uvarint()
	it.epoch = int64(e)
	return true
}

// headerIter walks a record's headers; the record was checked by parseRecord.
type headerIter struct {
	p           parser
	left        int
	name, value string
}

func (r *record) headerIter() headerIter {
	return headerIter{p: parser{s: r.headers}, left: r.nHeaders}
}

func (it *headerIter) next() bool {
	if it.left == 0 {
		return false
	}
	it.left--
	it.name, _ = it.p.str()
	it.value, _ = it.p.str()
	return true
}

// canonicalToken reports whether name is a header field name (an RFC 9110
// token) in the form http.CanonicalHeaderKey gives, so it can be used as an
// http.Header map key as it is.
func canonicalToken(name string) bool {
	if name == "" {
		return false
	}
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isTokenChar(c) {
			return false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validValue refuses what could split or end a header: CR, LF, NUL and the
// other control bytes but HTAB.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// storedHeaders returns the response headers to store: canonical names,
// sorted, without hop-by-hop fields, the fields named in Connection,
// Set-Cookie, per-response fields and the ones this package sets itself.
// It reports false when a header is not fit to replay.
func storedHeaders(h http.Header, drop map[string]bool) ([]headerField, bool) {
	connection := map[string]bool{}
	for _, v := range h["Connection"] {
		for _, f := range splitList(v) {
			connection[http.CanonicalHeaderKey(f)] = true
		}
	}
	out := make([]headerField, 0, len(h))
	for name, vals := range h {
		cn := http.CanonicalHeaderKey(name)
		if drop[cn] || connection[cn] || cn == "Content-Length" {
			continue
		}
		if !canonicalToken(cn) {
			return nil, false
		}
		for _, v := range vals {
			if !validValue(v) {
				return nil, false
			}
			out = append(out, headerField{cn, v})
		}
	}
	// A stable sort keeps the values of one name in their order.
	sortHeaderFields(out)
	return out, true
}

func sortHeaderFields(hs []headerField) {
	for i := 1; i < len(hs); i++ {
		for j := i; j > 0 && hs[j].name < hs[j-1].name; j-- {
			hs[j], hs[j-1] = hs[j-1], hs[j]
		}
	}
}
