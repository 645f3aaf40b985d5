// Command mkcorpus writes a seeded synthetic corpus in BEIR's corpus.jsonl
// format ({"_id","title","text"} a line) for scale benchmarks; see package
// internal/synthcorpus for what the passages are like. The same flags write
// the same bytes.
//
//	go run ./internal/cmd/mkcorpus -n 1000000 -out /tmp/m1/corpus.jsonl
package main

import (
	"flag"
	"io"
	"log"
	"os"

	"github.com/synthq/synthq/internal/synthcorpus"
)

func main() {
	var o synthcorpus.Options
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
	if err := synthcorpus.Write(w, o); err != nil {
		log.Fatal(err)
	}
}
