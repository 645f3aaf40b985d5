// Command mkcorpus writes a seeded synthetic corpus in BEIR's corpus.jsonl
// format ({"_id","title","text"} a line) for scale benchmarks: passages of
// 60–120 words drawn from a Zipf(1.1) vocabulary of English-like words (the
// 33 most frequent are the English stopwords), each passage about one of
// -topics topics whose own words make up about half its text, so lexical
// and embedding neighbours exist as in a real corpus; a fraction -copies of
// the passages are near copies of an earlier one (one word changed), which
// --dedup near must find. The same flags write the same bytes.
//
//	go run ./internal/cmd/mkcorpus -n 1000000 -out /tmp/m1/corpus.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"strings"
)

// stopwords are Lucene's English stop words: the corpus's most frequent
// words, as in English text.
var stopwords = []string{"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
	"is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
	"they", "this", "to", "was", "will", "with"}

// Options are mkcorpus's settings.
type Options struct {
	N      int     // passages
	Vocab  int     // distinct words
	Topics int     // topics
	Copies float64 // fraction of passages that are near copies of an earlier one
	Seed   uint64
}

func main() {
	var o Options
	flag.IntVar(&o.N, "n", 100_000, "passages")
	flag.IntVar(&o.Vocab, "vocab", 100_000, "distinct words")
	flag.IntVar(&o.Topics, "topics", 2_000, "topics (each with its own words)")
	flag.Float64Var(&o.Copies, "copies", 0.02, "fraction of passages that are near copies of an earlier one")
	flag.Uint64Var(&o.Seed, "seed", 1, "seed")
	out := flag.String("out", "", "output file (default: standard output)")
	flag.Parse()
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			log.Fatal(err)
		}
		defer func() {
			if err := f.Close(); err != nil {
				log.Fatal(err)
			}
		}()
		w = f
	}
	if err := Write(w, o); err != nil {
		log.Fatal(err)
	}
}

// Write writes o.N passages to w. Passage i depends only on o and i, so
// a near copy is made by generating its original again.
func Write(w io.Writer, o Options) error {
	if o.N < 0 || o.Vocab < len(stopwords)+100 || o.Topics < 1 || o.Copies < 0 || o.Copies >= 1 {
		return fmt.Errorf("mkcorpus: bad options %+v (vocab at least %d, topics at least 1, copies in [0, 1))", o, len(stopwords)+100)
	}
	g := newGenerator(o)
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	type doc struct {
		ID    string `json:"_id"`
		Title string `json:"title"`
		Text  string `json:"text"`
	}
	for i := 0; i < o.N; i++ {
		title, text := g.passage(i)
		if err := enc.Encode(doc{ID: fmt.Sprintf("d%08d", i), Title: title, Text: text}); err != nil {
			return fmt.Errorf("mkcorpus: passage %d: %w", i, err)
		}
	}
	return bw.Flush()
}

type generator struct {
	o      Options
	vocab  []string
	topics [][]uint32 // per topic: its own words, most characteristic first
}

func newGenerator(o Options) *generator {
	r := rand.New(rand.NewPCG(o.Seed, 0x6d6b636f72707573))
	suffixes := []string{"", "", "", "s", "ed", "ing", "ation", "ness", "ly", "er"}
	g := &generator{o: o, vocab: make([]string, o.Vocab)}
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
	copy(g.vocab, stopwords)
	// A topic's words: 50 words from the mid and rare part of the
	// vocabulary (content words, not the stopwords or the most common).
	g.topics = make([][]uint32, o.Topics)
	lo := len(stopwords) + 200
	for t := range g.topics {
		ws := make([]uint32, 50)
		for j := range ws {
			ws[j] = uint32(lo + r.IntN(o.Vocab-lo))
		}
		g.topics[t] = ws
	}
	return g
}

// passage returns passage i's title and text.
func (g *generator) passage(i int) (string, string) {
	r := rand.New(rand.NewPCG(g.o.Seed, uint64(i)))
	if i > 0 && r.Float64() < g.o.Copies {
		orig := r.IntN(i)
		title, text := g.passage(orig)
		words := strings.Fields(text)
		words[r.IntN(len(words))] = g.vocab[len(stopwords)+r.IntN(g.o.Vocab-len(stopwords))]
		return title, strings.Join(words, " ")
	}
	z := rand.NewZipf(r, 1.1, 2, uint64(g.o.Vocab-1))
	topic := g.topics[r.IntN(len(g.topics))]
	tz := rand.NewZipf(r, 1.3, 1, uint64(len(topic)-1))
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
