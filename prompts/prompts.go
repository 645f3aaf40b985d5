// Package prompts owns the query types, their templates (embedded), the
// few-shot example pools, seeded example selection and the parsing of model
// answers into queries. It depends on nothing else in synthq.
package prompts

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

//go:embed pools/default.jsonl
var defaultPool []byte

// Types lists the query types in their canonical order.
var Types = []string{"questions", "claims", "titles", "keywords", "msmarco", "random"}

// FewShot reports whether a type is prompted with examples (all but random,
// which is zero-shot as in the paper).
func FewShot(qtype string) bool { return qtype != "random" }

// ParseTypes checks a comma-separated list of query types and returns it in
// canonical order without duplicates.
func ParseTypes(list string) ([]string, error) {
	seen := map[string]bool{}
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(Types, t) {
			return nil, fmt.Errorf("unknown query type %q (known: %s)", t, strings.Join(Types, ", "))
		}
		seen[t] = true
	}
	var out []string
	for _, t := range Types {
		if seen[t] {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no query types in %q (known: %s)", list, strings.Join(Types, ", "))
	}
	return out, nil
}

// Example is one (passage, query) pair shown to the model.
type Example struct {
	Type    string `json:"type"`
	Passage string `json:"passage"`
	Query   string `json:"query"`
}

// Pool holds the few-shot examples of every type.
type Pool map[string][]Example

// DefaultPool returns the project's own examples (several per few-shot type).
func DefaultPool() Pool {
	p, err := ReadPool(bytes.NewReader(defaultPool), "pools/default.jsonl")
	if err != nil {
		panic("prompts: embedded default pool is invalid: " + err.Error())
	}
	return p
}

// ReadPool reads JSONL examples ({"type","passage","query"}); name is used in
// error messages, which give the line and field at fault.
func ReadPool(r io.Reader, name string) (Pool, error) {
	p := Pool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var ex Example
		if err := json.Unmarshal(b, &ex); err != nil {
			return nil, fmt.Errorf("%s:%d: invalid JSON: %w", name, line, err)
		}
		switch {
		case !slices.Contains(Types, ex.Type):
			return nil, fmt.Errorf("%s:%d: field \"type\": unknown query type %q (known: %s)", name, line, ex.Type, strings.Join(Types, ", "))
		case !FewShot(ex.Type):
			return nil, fmt.Errorf("%s:%d: field \"type\": %q is zero-shot and takes no examples", name, line, ex.Type)
		case strings.TrimSpace(ex.Passage) == "":
			return nil, fmt.Errorf("%s:%d: field \"passage\": missing or empty", name, line)
		case strings.TrimSpace(ex.Query) == "":
			return nil, fmt.Errorf("%s:%d: field \"query\": missing or empty", name, line)
		}
		p[ex.Type] = append(p[ex.Type], ex)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", name, err)
	}
	return p, nil
}

// Merge returns p with the types present in q replaced by q's examples.
func (p Pool) Merge(q Pool) Pool {
	out := Pool{}
	for t, ex := range p {
		out[t] = ex
	}
	for t, ex := range q {
		out[t] = ex
	}
	return out
}

// Fingerprint identifies the pool's content (enters each request fingerprint
// through the rendered prompt, and the manifest).
func (p Pool) Fingerprint() string {
	h := sha256.New()
	for _, t := range Types {
		for _, ex := range p[t] {
			fmt.Fprintf(h, "%s\x00%s\x00%s\x00", t, ex.Passage, ex.Query)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Templates renders prompts. It is safe for concurrent use.
type Templates struct {
	system   string
	byType   map[string]*template.Template
	versions map[string]string
}

// LoadTemplates parses the embedded templates.
func LoadTemplates() (*Templates, error) {
	sys, err := templateFS.ReadFile("templates/system.tmpl")
	if err != nil {
		return nil, fmt.Errorf("load templates: %w", err)
	}
	t := &Templates{system: strings.TrimSpace(string(sys)), byType: map[string]*template.Template{}, versions: map[string]string{}}
	for _, qt := range Types {
		src, err := templateFS.ReadFile("templates/" + qt + ".tmpl")
		if err != nil {
			return nil, fmt.Errorf("load templates: %w", err)
		}
		tm, err := template.New(qt).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("load template %s: %w", qt, err)
		}
		t.byType[qt] = tm
		sum := sha256.Sum256(append(append([]byte{}, sys...), src...))
		t.versions[qt] = qt + "@" + hex.EncodeToString(sum[:4])
	}
	return t, nil
}

// Version names a type's template by content ("questions@1a2b3c4d"); it
// changes when the template or the system prompt is edited.
func (t *Templates) Version(qtype string) string { return t.versions[qtype] }

// Versions returns every type's template version.
func (t *Templates) Versions() map[string]string {
	out := make(map[string]string, len(t.versions))
	for k, v := range t.versions {
		out[k] = v
	}
	return out
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Render builds the chat messages for one passage and type.
func (t *Templates) Render(qtype, passage string, examples []Example) ([]Message, error) {
	tm, ok := t.byType[qtype]
	if !ok {
		return nil, fmt.Errorf("render: unknown query type %q", qtype)
	}
	var b strings.Builder
	if err := tm.Execute(&b, struct {
		Passage  string
		Examples []Example
	}{passage, examples}); err != nil {
		return nil, fmt.Errorf("render %s: %w", qtype, err)
	}
	return []Message{{Role: "system", Content: t.system}, {Role: "user", Content: strings.TrimSpace(b.String())}}, nil
}

// Draw picks k examples of qtype from the pool with an RNG seeded by
// (seed, passage id, type): the same run draws the same examples. Examples
// whose passage is the target passage are never shown. Examples are cut to
// maxChars like passages.
func (p Pool) Draw(qtype string, seed uint64, docID, passage string, k, maxChars int) []Example {
	var cand []Example
	for _, ex := range p[qtype] {
		if ex.Passage != passage {
			cand = append(cand, ex)
		}
	}
	if len(cand) == 0 || k <= 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(seed, hash64(docID+"\x00"+qtype)))
	r.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	if k > len(cand) {
		k = len(cand)
	}
	out := make([]Example, k)
	for i := range out {
		out[i] = cand[i]
		out[i].Passage = CutPassage(out[i].Passage, maxChars)
	}
	return out
}

func hash64(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// CutPassage shortens text to at most maxChars characters, cutting at the last
// word boundary before the limit (or mid-word where a single word is longer).
// maxChars <= 0 means no limit.
func CutPassage(text string, maxChars int) string {
	text = strings.TrimSpace(text)
	if maxChars <= 0 || utf8.RuneCountInString(text) <= maxChars {
		return text
	}
	cut, n := 0, 0
	for i := range text {
		if n == maxChars {
			cut = i
			break
		}
		n++
	}
	head := text[:cut]
	next, _ := utf8.DecodeRuneInString(text[cut:])
	if unicode.IsSpace(next) {
		return strings.TrimRightFunc(head, unicode.IsSpace)
	}
	if i := strings.LastIndexFunc(head, unicode.IsSpace); i > 0 {
		return strings.TrimRightFunc(head[:i], unicode.IsSpace)
	}
	return head
}
