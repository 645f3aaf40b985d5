// Command fakeembed serves the test suite's fake embeddings server
// (internal/fakes.Embedder: hashed bag of words, OpenAI-compatible
// POST /v1/embeddings) on a loopback port, for benchmarks of dense mining
// through a real HTTP endpoint. It prints the base URL and serves until
// interrupted.
//
//	go run ./internal/cmd/fakeembed -dim 256 &
//	synthq run ... --retriever dense --embed-url http://127.0.0.1:PORT/v1 --embed-model fake
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/synthq/synthq/internal/fakes"
)

func main() {
	dim := flag.Int("dim", 256, "vector dimensions")
	model := flag.String("model", "fake", "model name it answers as")
	flavor := flag.String("flavor", "vllm", "vllm | tei (error bodies and batch limits of that server)")
	flag.Parse()
	f := fakes.NewEmbedder(*flavor, *model, *dim)
	defer f.Close()
	fmt.Println(f.URL())
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt)
	<-c
}
