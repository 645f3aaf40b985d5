// Package synthcorpus generates a seeded synthetic corpus for scale tests
// and benchmarks: passages of 60–120 words drawn from a Zipf(1.1)
// vocabulary of English-like words (the 33 most frequent are the English
// stopwords), each passage about one of Topics topics whose own words make
// up about half its text, so lexical and embedding neighbours exist as in a
// real corpus; a fraction Copies of the passages are near copies of an
// earlier one (one word changed). Passage i depends only on the options and
// i, so any passage can be made alone, in any order, on any core.
package synthcorpus

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
)

// Stopwords are Lucene's English stop words: the corpus's most frequent
// words, as in English text.
var Stopwords = []string{"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
	"is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
	"they", "this", "to", "was", "will", "with"}

// Options are the corpus's settings.
type Options struct {
	N      int     // passages
	Vocab  int     // distinct words
	Topics int     // topics
	Copies float64 // fraction of passages that are near copies of an earlier one
	Seed   uint64
}

// Write writes o.N passages to w. Passage i depends only on o and i, so
// a near copy is made by generating its original again.
func Write(w io.Writer, o Options) error {
	if o.N < 0 || o.Vocab < len(Stopwords)+100 || o.Topics < 1 || o.Copies < 0 || o.Copies >= 1 {
		return fmt.Errorf("synthcorpus: bad options %+v (vocab at least %d, topics at least 1, copies in [0, 1))", o, len(Stopwords)+100)
	}
	g := New(o)
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	type doc struct {
		ID    string `json:"_id"`
		Title string `json:"title"`
		Text  string `json:"text"`
	}
	for i := 0; i < o.N; i++ {
		title, text := g.Passage(i)
		if err := enc.Encode(doc{ID: ID(i), Title: title, Text: text}); err != nil {
			return fmt.Errorf("synthcorpus: passage %d: %w", i, err)
		}
	}
	return bw.Flush()
}

// ID is passage i's id.
func ID(i int) string { return fmt.Sprintf("d%08d", i) }

// Generator makes passages; it is safe for concurrent use.
type Generator struct {
	o      Options
	vocab  []string
	topics [][]uint32 // per topic: its own words, most characteristic first
}

// New prepares the vocabulary and topics of o.
func New(o Options) *Generator {
	r := rand.New(rand.NewPCG(o.Seed, 0x6d6b636f72707573))
	suffixes := []string{"", "", "", "s", "ed", "ing", "ation", "ness", "ly", "er"}
	g := &Generator{o: o, vocab: make([]string, o.Vocab)}
	seen := map[string]bool{}
	for i := range g.vocab {
		for {
			b := make([]byte, 3+r.IntN(6))
			for j := range b {
				b[j] = byte('a' + r.IntN(26))
			}
			s := string(b) + suffixes[r.IntN(len(suffixes))]
			if !seen[s] {
				seen[s] = true
				g.vocab[i] = s
				break
			}
		}
	}
	copy(g.vocab, Stopwords)
	// A topic's words: 50 words from the mid and rare part of the
	// vocabulary (content words, not the Stopwords or the most common).
	g.topics = make([][]uint32, o.Topics)
	lo := len(Stopwords) + 200
	for t := range g.topics {
		ws := make([]uint32, 50)
		for j := range ws {
			ws[j] = uint32(lo + r.IntN(o.Vocab-lo))
		}
		g.topics[t] = ws
	}
	return g
}

// Passage returns passage i's title and text.
func (g *Generator) Passage(i int) (string, string) {
	r := rand.New(rand.NewPCG(g.o.Seed, uint64(i)))
	if i > 0 && r.Float64() < g.o.Copies {
		orig := r.IntN(i)
		title, text := g.Passage(orig)
		words := strings.Fields(text)
		words[r.IntN(len(words))] = g.vocab[len(Stopwords)+r.IntN(g.o.Vocab-len(Stopwords))]
		return title, strings.Join(words, " ")
	}
	z := rand.NewZipf(r, 1.1, 2, uint64(g.o.Vocab-1))
	topic := g.topics[r.IntN(len(g.topics))]
	tz := rand.NewZipf(r, 1.1, 4, uint64(len(topic)-1))
	word := func() string {
		if r.IntN(2) == 0 {
			return g.vocab[topic[tz.Uint64()]]
		}
		return g.vocab[z.Uint64()]
	}
	sentence := func(m int) string {
		var sb strings.Builder
		for j := 0; j < m; j++ {
			if j > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(word())
		}
		return sb.String()
	}
	return sentence(3 + r.IntN(4)), sentence(60 + r.IntN(61))
}

// Query returns a query about passage i: 4–10 of its words, seeded by i.
func (g *Generator) Query(i int) string {
	_, text := g.Passage(i)
	ws := strings.Fields(text)
	r := rand.New(rand.NewPCG(g.o.Seed^0x7175657279, uint64(i)))
	n := 4 + r.IntN(7)
	out := make([]string, n)
	for j := range out {
		out[j] = ws[r.IntN(len(ws))]
	}
	return strings.Join(out, " ")
}
