package stages

import (
	"context"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/llm"
	"github.com/synthq/synthq/pipeline"
)

// Deps are the remote peers the stages call. Probe functions check that a
// server answers before its first request; they are only called when there
// is work that is not already stored.
type Deps struct {
	Generator    Generator
	Scorer       Scorer
	Embedders    []Embedder // one per cfg.DenseRuns(), in order
	ProbeLLM     func(ctx context.Context) error
	ProbeTeacher func(ctx context.Context) error
	// Workers are how many items each role works on at once: enough to
	// fill every endpoint to its largest limit (the endpoints' schedulers
	// hold the excess back). 0: the role's pinned concurrency, or 16.
	LLMWorkers, TeacherWorkers, EmbedWorkers int
	// Clients are the HTTP clients of every role, for their endpoints'
	// figures (progress, manifest, stats); nil entries are skipped.
	Clients []*httpx.Client
}

// workers is the worker-pool size for a role.
func (d *Deps) workers(cfg *pipeline.Config, role string) int {
	n := map[string]int{"llm": d.LLMWorkers, "teacher": d.TeacherWorkers, "embed": d.EmbedWorkers}[role]
	if n > 0 {
		return n
	}
	if n = cfg.ConcurrencyFor(role); n > 0 {
		return n
	}
	return 16
}

// Generator is what the generate stage needs of an LLM (llm.OpenAI,
// llm.Offline): up to req.N answers to one chat request (a server that
// ignores n returns one), token usage on the first answer. Implementations
// are safe for concurrent use.
type Generator interface {
	Generate(ctx context.Context, req llm.Request) ([]dataset.Answer, error)
}

// Scorer is what the label stage needs of a teacher: one score per passage,
// in input order.
type Scorer interface {
	Score(ctx context.Context, query string, passages []string) ([]float32, error)
}

// PartialScorer is a Scorer that scores a list around the passages the
// server refuses on their own (teacher.Client): scores has one entry per
// passage, refused maps the index of each refused passage to the server's
// words (its score is 0 and meaningless); err is for what no split fixes.
type PartialScorer interface {
	ScorePartial(ctx context.Context, query string, passages []string) (scores []float32, refused map[int]string, err error)
}

// Embedder is what dense mining needs of an embeddings endpoint: one
// unit-length vector per text, in input order; texts the server refuses on
// their own (too long) get a nil vector and a reason in failed.
type Embedder interface {
	Embed(ctx context.Context, texts []string) (vecs [][]float32, failed map[int]string, err error)
}
