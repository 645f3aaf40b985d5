package dataset

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/retriever"
)

// The first-pass runs of a configuration and the fingerprints their hit
// lists are stored under: mine writes them, the report reads them.

// FirstPassRun names one first-pass retrieval run and the fingerprint its
// hit lists are stored under (hits/<Fingerprint(FP, query)>).
type FirstPassRun struct {
	Name string // "bm25", "dense", or "dense0", "dense1"… with several models
	FP   string
}

// BM25RunFP and DenseRunFP are the fingerprints mine stores hit lists under.
func BM25RunFP(cfg *pipeline.Config, corpusSHA string) string {
	return pipeline.Fingerprint("bm25/v1", strconv.FormatFloat(cfg.BM25K1, 'g', -1, 64),
		strconv.FormatFloat(cfg.BM25B, 'g', -1, 64), corpusSHA, strconv.Itoa(cfg.Candidates))
}

func DenseRunFP(cfg *pipeline.Config, d pipeline.DenseRun, meta CorpusMeta) string {
	fp := pipeline.Fingerprint("dense/v1", d.Model, d.QueryPrefix, d.PassagePrefix, meta.SHA256, strconv.Itoa(cfg.Candidates))
	if win := EmbedWindow(cfg, nil).Desc(); win != "" {
		fp = pipeline.Fingerprint(fp, win) // the passage vectors depend on the cut
	}
	if desc := denseIndexDesc(cfg, meta.Passages); desc != "" {
		fp = pipeline.Fingerprint(fp, desc) // approximate hits depend on the index
	}
	return fp
}

// DenseIndexFP names a dense run's index file: what its vectors and lists
// depend on (model, passage prefix, the embedder's window, the corpus, the
// index settings), not the query side, so a prepared corpus's index serves
// every run that searches the same way.
func DenseIndexFP(cfg *pipeline.Config, d pipeline.DenseRun, meta CorpusMeta) string {
	mode, p, _ := DenseIndexParams(cfg, meta.Passages)
	return pipeline.Fingerprint("dense-index/v1", d.Model, d.PassagePrefix, meta.SHA256, EmbedWindow(cfg, nil).Desc(),
		mode, fmt.Sprintf("lists=%d seed=%d iters=10 sample=64", p.Lists, p.Seed))
}

// DenseIndexParams are the IVF settings of a corpus of n passages: one list
// (a flat, exact index) unless the run searches approximately.
func DenseIndexParams(cfg *pipeline.Config, n int) (mode string, p retriever.IVFParams, probe int) {
	mode = cfg.DenseIndexFor(n)
	if mode != "approx" {
		return mode, retriever.IVFParams{Lists: 1}, 1
	}
	p = retriever.IVFParams{Lists: cfg.DenseLists, Seed: cfg.Seed}
	if p.Lists == 0 {
		p.Lists = max(1, int(math.Round(math.Sqrt(float64(n)))))
	}
	probe = cfg.DenseProbe
	if probe == 0 {
		probe = retriever.DefaultProbe(p.Lists)
	}
	return mode, p, min(probe, p.Lists)
}

// denseIndexDesc names the approximate index in fingerprints ("" for exact
// search, whose hits do not depend on it).
func denseIndexDesc(cfg *pipeline.Config, n int) string {
	mode, p, probe := DenseIndexParams(cfg, n)
	if mode != "approx" {
		return ""
	}
	return fmt.Sprintf("ivf/v1 lists=%d probe=%d seed=%d iters=10 sample=64", p.Lists, probe, p.Seed)
}

// FirstPassRuns lists the configured first-pass runs of st's corpus, in the
// order mine fuses them.
func FirstPassRuns(st *pipeline.Store, cfg *pipeline.Config) ([]FirstPassRun, error) {
	var meta CorpusMeta
	if _, err := st.GetJSON(MetaCorpus, &meta); err != nil {
		return nil, err
	}
	dense, err := cfg.DenseRuns()
	if err != nil {
		return nil, err
	}
	var runs []FirstPassRun
	if slices.Contains(cfg.Retrievers, "bm25") {
		runs = append(runs, FirstPassRun{Name: "bm25", FP: BM25RunFP(cfg, meta.SHA256)})
	}
	for i, d := range dense {
		name := "dense"
		if len(dense) > 1 {
			name = "dense" + strconv.Itoa(i)
		}
		runs = append(runs, FirstPassRun{Name: name, FP: DenseRunFP(cfg, d, meta)})
	}
	return runs, nil
}

// StoredHits returns the passage ids a run retrieved for query, best first,
// as stored by mine; ok is false when the run holds no list for it.
func StoredHits(st *pipeline.Store, run FirstPassRun, query string) (ids []string, ok bool, err error) {
	b, ok, err := st.Get(HitsKey(run.FP, query))
	if err != nil || !ok {
		return nil, ok, err
	}
	var hl HitList
	if err := json.Unmarshal(b, &hl); err != nil {
		return nil, false, fmt.Errorf("hits of %q (%s): %w", query, run.Name, err)
	}
	return hl.IDs, true, nil
}

// AnswerFor returns the stored LLM answer of a query record, if any.
func AnswerFor(st *pipeline.Store, q *Query) (*Answer, error) {
	var a Answer
	ok, err := st.GetJSON(AnswerKey(q.GenFP), &a)
	if err != nil || !ok {
		return nil, err
	}
	return &a, nil
}

// CorpusSHA256 is the fingerprint of the corpus file the store was built from.
func CorpusSHA256(st *pipeline.Store) (string, error) {
	var meta CorpusMeta
	_, err := st.GetJSON(MetaCorpus, &meta)
	return meta.SHA256, err
}
