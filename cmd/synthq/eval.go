package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sourcegraph/conc/pool"
	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/adapter"
	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/retriever"
	"github.com/synthq/synthq/stages"
)

// evalDepth is how many passages each run retrieves per query (R@1000).
const evalDepth = 1000

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "evaluate first-pass retrieval on a BEIR dataset: nDCG@10, R@100, R@1000, MRR@10",
		Flags: append(append(corpusFlags(), retrieverFlags()...),
			&cli.StringFlag{Name: "queries", Usage: "BEIR queries.jsonl", Required: true},
			&cli.StringFlag{Name: "qrels", Usage: "BEIR qrels TSV (header optional, LF or CRLF)", Required: true},
			integer("concurrency", 16, "embeddings requests in flight"),
			integer("max-retries", pipeline.DefaultMaxRetries, "retries of a failed request"),
			&cli.BoolFlag{Name: "json", Usage: `print {"ndcg@10","recall@100","recall@1000","mrr@10","queries"} as JSON`},
			&cli.StringFlag{Name: "run", Usage: "write the top 1000 per query as a TREC run file"},
			&cli.StringFlag{Name: "adapter", Usage: "a query adapter from synthq adapt (adapter.safetensors): applied to the query vectors of the dense run of its embed model"},
		),
		Action: runEval,
	}
}

func runEval(c *cli.Context) error {
	if c.String("corpus") == "" {
		return usagef("eval", "--corpus is required: the BEIR corpus.jsonl the queries search")
	}
	cfg := pipeline.DefaultConfig()
	cfg.Concurrency, cfg.MaxRetries = c.Int("concurrency"), c.Int("max-retries")
	applyRetriever(c, cfg)
	if err := cfg.Validate(); err != nil {
		return err
	}
	dense, err := cfg.DenseRuns()
	if err != nil {
		return err
	}
	adp, adaptRun, err := loadEvalAdapter(c.String("adapter"), dense)
	if err != nil {
		return err
	}
	embedders, _, err := buildEmbedders(cfg, c.App.ErrWriter)
	if err != nil {
		return err
	}
	qrels, err := retriever.ReadQrels(c.String("qrels"))
	if err != nil {
		return err
	}
	queries, err := retriever.ReadQueries(c.String("queries"))
	if err != nil {
		return err
	}
	var judged []retriever.Query
	for _, q := range queries {
		if _, ok := qrels[q.ID]; ok {
			judged = append(judged, q) // queries without judgments are skipped
		}
	}
	var ids, texts []string
	if _, err := stages.ReadCorpus(c.Context, c.String("corpus"), stages.CorpusOptions{
		IDField: c.String("id-field"), TextField: c.String("text-field"), TitleField: c.String("title-field"),
		SkipInvalid: c.Bool("skip-invalid")}, map[string]int64{}, func(r stages.Record) error {
		ids = append(ids, r.ID)
		texts = append(texts, r.Full()) // as mining reads a passage
		return nil
	}); err != nil {
		return err
	}
	var lists [][][]retriever.Hit // run -> query -> hits
	names := []string{}
	for _, r := range cfg.Retrievers {
		if r != "bm25" {
			continue
		}
		b := retriever.NewBM25Builder(nil, &retriever.BM25Params{K1: float32(cfg.BM25K1), B: float32(cfg.BM25B)})
		b.AddBatch(ids, texts, 0)
		ix := b.Build()
		res := make([][]retriever.Hit, len(judged))
		for i, q := range judged {
			if res[i], err = ix.Search(c.Context, q.Text, evalDepth); err != nil {
				return err
			}
		}
		lists, names = append(lists, res), append(names, "bm25")
	}
	for i, d := range dense {
		var a *adapter.Adapter
		name := "dense:" + d.Model
		if i == adaptRun {
			a, name = adp, name+"+adapter"
		}
		res, err := evalDense(c.Context, embedders[i], d, cfg, ids, texts, judged, a)
		if err != nil {
			return fmt.Errorf("dense run %s: %w", d.Model, err)
		}
		lists, names = append(lists, res), append(names, name)
	}
	runs := map[string][]string{}
	tag := "synthq-" + c.String("retriever")
	var runF *os.File
	if p := c.String("run"); p != "" {
		if runF, err = os.Create(p); err != nil {
			return fmt.Errorf("create run file: %w", err)
		}
		defer runF.Close()
	}
	for qi, q := range judged {
		hits := make([][]retriever.Hit, len(lists))
		for r := range lists {
			hits[r] = lists[r][qi]
		}
		for rank, f := range retriever.FirstPassHits(cfg.RRFK, evalDepth, hits...) {
			runs[q.ID] = append(runs[q.ID], f.ID)
			if runF != nil {
				fmt.Fprintf(runF, "%s Q0 %s %d %.6f %s\n", q.ID, f.ID, rank+1, f.Score, tag)
			}
		}
	}
	if runF != nil {
		if err := runF.Close(); err != nil {
			return fmt.Errorf("write run file: %w", err)
		}
	}
	m := retriever.Evaluate(qrels, runs)
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(m)
	}
	fmt.Fprintf(c.App.Writer, "%v: queries %d  nDCG@10 %.4f  R@100 %.4f  R@1000 %.4f  MRR@10 %.4f\n", names, m.Queries, m.NDCG10, m.Recall100, m.Recall1k, m.MRR10)
	return nil
}

// loadEvalAdapter reads --adapter and finds the dense run of its embed
// model (-1 without an adapter). An adapter of a model no dense run uses is
// refused, naming both.
func loadEvalAdapter(path string, dense []pipeline.DenseRun) (*adapter.Adapter, int, error) {
	if path == "" {
		return nil, -1, nil
	}
	a, err := adapter.ReadSafetensors(path)
	if err != nil {
		return nil, -1, err
	}
	model := a.Meta["embed_model"]
	var have []string
	for i, d := range dense {
		if d.Model == model {
			return a, i, nil
		}
		have = append(have, fmt.Sprintf("%q", d.Model))
	}
	if len(dense) == 0 {
		return nil, -1, fmt.Errorf("--adapter %s transforms queries of embed model %q: give --retriever dense (or bm25,dense) with --embed-model %q", path, model, model)
	}
	return nil, -1, fmt.Errorf("--adapter %s was trained for embed model %q (%d dims), but this eval embeds with %s: an adapter applies only to the model it was trained for", path, model, a.Dim, strings.Join(have, ", "))
}

// evalDense embeds the corpus and the queries (nothing is stored: eval has
// no store) and searches them as --dense-index says (an approximate search
// also runs exactly and reports its recall@100). A passage the server refuses is left out
// of the index and reported; a refused query retrieves nothing. With an
// adapter, query vectors are transformed by it first.
func evalDense(ctx context.Context, emb stages.Embedder, d pipeline.DenseRun, cfg *pipeline.Config, ids, texts []string, qs []retriever.Query, adp *adapter.Adapter) ([][]retriever.Hit, error) {
	embedAll := func(in []string) ([][]float32, int, error) {
		out := make([][]float32, len(in))
		var mu sync.Mutex
		refused := 0
		p := pool.New().WithErrors().WithContext(ctx).WithFirstError().WithMaxGoroutines(cfg.Concurrency)
		step := cfg.EmbedBatch
		for lo := 0; lo < len(in); lo += step {
			hi := min(lo+step, len(in))
			p.Go(func(ctx context.Context) error {
				vecs, failed, err := emb.Embed(ctx, in[lo:hi])
				if err != nil {
					return err
				}
				copy(out[lo:hi], vecs)
				mu.Lock()
				refused += len(failed)
				mu.Unlock()
				return nil
			})
		}
		return out, refused, p.Wait()
	}
	pin := make([]string, len(texts))
	for i, t := range texts {
		pin[i] = d.PassagePrefix + t
	}
	pv, refused, err := embedAll(pin)
	if err != nil {
		return nil, err
	}
	if refused > 0 {
		fmt.Fprintf(os.Stderr, "warning: the embeddings server refused %d passages; they are not in the dense index\n", refused)
	}
	mode, params, probe := dataset.DenseIndexParams(cfg, len(ids))
	tmp, err := os.MkdirTemp("", "synthq-eval-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var w *retriever.IVFWriter
	for i, v := range pv {
		if v == nil {
			continue
		}
		if w == nil {
			if w, err = retriever.NewIVFWriter(filepath.Join(tmp, "dense.ivf"), len(v)); err != nil {
				return nil, err
			}
			defer w.Abort()
		}
		if err := w.Add(ids[i], v); err != nil {
			return nil, err
		}
	}
	if w == nil {
		return nil, fmt.Errorf("no passage could be embedded")
	}
	ix, err := w.Build(ctx, params, d.Model, nil)
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	qin := make([]string, len(qs))
	for i, q := range qs {
		qin[i] = d.QueryPrefix + q.Text
	}
	qv, _, err := embedAll(qin)
	if err != nil {
		return nil, err
	}
	var ok [][]float32
	var at []int
	for i, v := range qv {
		if v == nil {
			continue
		}
		if adp != nil {
			if len(v) != adp.Dim {
				return nil, fmt.Errorf("--adapter was trained for %q vectors of %d dims, but %s answers %d dims", adp.Meta["embed_model"], adp.Dim, d.Model, len(v))
			}
			v = adp.Apply(v)
		}
		ok, at = append(ok, v), append(at, i)
	}
	res, err := ix.SearchBatch(ctx, ok, evalDepth, probe, 0)
	if err != nil {
		return nil, err
	}
	if mode == "approx" {
		exact, err := ix.SearchBatch(ctx, ok, evalDepth, ix.Lists(), 0)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "dense index %s: approx, %d lists, %d probed: recall@100 against exact %.4f\n",
			d.Model, ix.Lists(), probe, retriever.RecallAt(100, res, exact))
	}
	out := make([][]retriever.Hit, len(qs))
	for k, i := range at {
		out[i] = res[k]
	}
	return out, nil
}
