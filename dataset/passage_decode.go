package dataset

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// DecodePassage decodes a stored passage (doc/<id>) into *p, which it
// overwrites. The form synthq writes (json.Marshal of a Passage whose strings
// need no escapes) is read directly, about 10× faster than encoding/json:
// label and export read a passage for every candidate. Anything else goes
// through json.Unmarshal, so the result is always the one json.Unmarshal
// gives into a zero Passage.
func DecodePassage(b []byte, p *Passage) error {
	if q, ok := fastPassage(b); ok {
		*p = q
		return nil
	}
	*p = Passage{}
	return json.Unmarshal(b, p)
}

// fastPassage reads {"title":"…","text":"…","line":N,"hash":N} (title left
// out when empty, as omitempty writes it) with strings free of escapes and
// control characters and valid UTF-8; ok is false for any other input.
func fastPassage(b []byte) (p Passage, ok bool) {
	if rest, has := bytes.CutPrefix(b, []byte(`{"title":`)); has {
		if p.Title, rest, ok = plainString(rest); !ok {
			return p, false
		}
		b, ok = bytes.CutPrefix(rest, []byte(`,"text":`))
	} else {
		b, ok = bytes.CutPrefix(b, []byte(`{"text":`))
	}
	if !ok {
		return p, false
	}
	if p.Text, b, ok = plainString(b); !ok {
		return p, false
	}
	if b, ok = bytes.CutPrefix(b, []byte(`,"line":`)); !ok {
		return p, false
	}
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	line, err := strconv.Atoi(string(b[:i]))
	if err != nil || (i > 1 && b[0] == '0') || (i > 2 && b[0] == '-' && b[1] == '0') {
		return p, false
	}
	p.Line = line
	if b, ok = bytes.CutPrefix(b[i:], []byte(`,"hash":`)); !ok {
		return p, false
	}
	i = 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	h, err := strconv.ParseUint(string(b[:i]), 10, 64)
	if err != nil || (i > 1 && b[0] == '0') || string(b[i:]) != "}" {
		return p, false
	}
	p.Hash = h
	return p, true
}

// plainString reads a JSON string at the start of b that holds no escape
// and no control character, and is valid UTF-8.
func plainString(b []byte) (s string, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	j := bytes.IndexByte(b[1:], '"')
	if j < 0 {
		return "", nil, false
	}
	body := b[1 : 1+j]
	if bytes.IndexByte(body, '\\') >= 0 || !utf8.Valid(body) {
		return "", nil, false
	}
	for _, c := range body {
		if c < 0x20 {
			return "", nil, false
		}
	}
	return string(body), b[2+j:], true
}
