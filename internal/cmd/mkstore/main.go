// Command mkstore writes a finished synthq store of synthetic data for the
// export benchmark: P passages, R labelled lists of C candidates each, and
// the run config, as a real run leaves them. It calls no server.
//
//	go run ./internal/cmd/mkstore -rows 1000000 -passages 200000 -out /tmp/big
//	/usr/bin/time -v synthq export --store /tmp/big/store --out /tmp/big/out --format arrow
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

func main() {
	rows := flag.Int("rows", 100000, "labelled lists")
	passages := flag.Int("passages", 50000, "passages")
	cands := flag.Int("candidates", 20, "candidates per list")
	words := flag.Int("words", 30, "words per passage")
	out := flag.String("out", "", "run directory (the store goes to OUT/store)")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	st, err := pipeline.OpenStore(filepath.Join(*out, "store"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	r := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, 20000)
	for i := range vocab {
		b := make([]byte, 3+r.IntN(8))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		vocab[i] = string(b)
	}
	text := func(n int) string {
		ws := make([]string, n)
		for i := range ws {
			ws[i] = vocab[r.IntN(len(vocab))]
		}
		return strings.Join(ws, " ")
	}
	id := func(i int) string { return fmt.Sprintf("p%07d", i) }
	b := st.NewBatch()
	for i := 0; i < *passages; i++ {
		if err := b.PutJSON(dataset.DocKey(id(i)), dataset.Passage{Title: text(3), Text: text(*words)}); err != nil {
			log.Fatal(err)
		}
	}
	types := []string{"questions", "claims", "titles", "keywords", "msmarco", "random"}
	for q := 0; q < *rows; q++ {
		src := q / len(types) % *passages
		l := dataset.Labelled{DocID: id(src), Type: types[q%len(types)], Query: text(8)}
		for k := 0; k < *cands; k++ {
			d := src
			if k > 0 {
				d = r.IntN(*passages)
			}
			l.DocIDs = append(l.DocIDs, id(d))
			l.Ranks = append(l.Ranks, int32(k+1))
			score := float32(r.NormFloat64())
			if k == 0 {
				score += 6
			}
			l.Raw = append(l.Raw, score)
		}
		qid := dataset.QID(l.DocID, l.Type, q/(len(types)**passages))
		if err := b.PutJSON(dataset.LabelKey(qid), l); err != nil {
			log.Fatal(err)
		}
	}
	cfg := &pipeline.Config{Offline: true, Out: *out, RequireSourceTop1: true, MinTopPercentile: 25, DevFraction: 0.1, Seed: 1}
	cfg.EnsureDefaults()
	if err := b.PutJSON(dataset.MetaConfig, cfg); err != nil {
		log.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %d passages and %d lists of %d to %s\n", *passages, *rows, *cands, filepath.Join(*out, "store"))
}
