// Package retriever holds first-pass retrieval: the Retriever contract, a
// Lucene-compatible BM25 index, reciprocal rank fusion and ranking metrics.
package retriever

import "context"

// Hit is one retrieved passage: its id, its 1-based rank and its score.
type Hit struct {
	DocID string  `json:"id"`
	Rank  int     `json:"rank"`
	Score float32 `json:"score"`
}

// Retriever returns the top k passages for a query, best first. Implementations
// are safe for concurrent use.
type Retriever interface {
	Search(ctx context.Context, query string, k int) ([]Hit, error)
}
