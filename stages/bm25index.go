package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/retriever"
)

// BM25IndexFile is the BM25 index's file in a prepared folder, written by
// synthq prepare and memory-mapped read-only by every run on the folder.
const BM25IndexFile = "bm25.idx"

// bm25Params are the run's BM25 parameters.
func bm25Params(cfg *pipeline.Config) *retriever.BM25Params {
	return &retriever.BM25Params{K1: float32(cfg.BM25K1), B: float32(cfg.BM25B)}
}

// bm25FileFP names what a BM25 index file is built from: the corpus (by
// digest and size, passages in store order) and the analyzer. Its params
// are checked apart (OpenBM25).
func bm25FileFP(meta dataset.CorpusMeta) map[string]string {
	return map[string]string{
		"corpus_sha256": meta.SHA256,
		"passages":      strconv.Itoa(meta.Passages),
		"analyzer":      "english/v1 (UAX #29, possessives, 33 Lucene stopwords, Porter)",
	}
}

// buildBM25 indexes every passage of st (in key order) with a progress bar
// named "bm25 index": passages analysed, then the index's three passes over
// the postings as 1/retriever.BM25BuildShare of the analysis, split by
// their measured costs, so the ETA holds to the end. Cost: the analysis of
// every passage on every core, then three passes over the postings;
// memory: about 14 bytes a posting while it builds, 8 after.
func buildBM25(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, progress *pipeline.Progress) (*retriever.BM25, error) {
	total, err := st.Count(pipeline.PrefixDoc)
	if err != nil {
		return nil, err
	}
	buildUnits := int64(total / retriever.BM25BuildShare)
	bar := progress.Start("bm25 index", int64(total)+buildUnits)
	defer bar.Finish()
	b := retriever.NewBM25Builder(nil, bm25Params(cfg))
	const chunk = 16384 // passages analysed in parallel at a time
	var ids, texts []string
	err = dataset.ScanJSON(st, pipeline.PrefixDoc, func(id string, p dataset.Passage) error {
		ids, texts = append(ids, id), append(texts, p.Full())
		if len(ids) == chunk {
			if err := ctx.Err(); err != nil {
				return err
			}
			b.AddBatch(ids, texts, 0)
			bar.Add(int64(len(ids)))
			ids, texts = ids[:0], texts[:0]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.AddBatch(ids, texts, 0)
	bar.Add(int64(len(ids)))
	ids, texts = nil, nil
	// The analysis leaves the postings' earlier backing arrays (grown by
	// append) and the scan's texts as garbage; the build then allocates the
	// index (8 bytes a posting) beside the builder: collected first, the
	// two do not sit on top of that garbage.
	returnGarbage()
	var shown int64
	ix := b.BuildProgress(func(done, all int64) {
		if all == 0 {
			return
		}
		now := done * buildUnits / all
		bar.Add(now - shown)
		shown = now
	})
	bar.Add(buildUnits - shown) // the bar ends full (a build with no postings)
	bar.Finish()
	returnGarbage() // the builder: ~14 bytes a posting
	return ix, nil
}

// prepareBM25 writes the prepared folder's BM25 index file, unless one
// built from the same corpus with the same parameters is there already
// (a prepare that resumes). It returns the index's description.
func prepareBM25(ctx context.Context, env *pipeline.Env, dir string, meta dataset.CorpusMeta) (*PreparedBM25, error) {
	cfg, c := env.Config, env.Counters("prepare")
	path := filepath.Join(dir, BM25IndexFile)
	fp := bm25FileFP(meta)
	ix, err := retriever.OpenBM25(path, nil, bm25Params(cfg), fp)
	if err == nil {
		c.Add("bm25_index_cached", 1)
	} else {
		if !errors.Is(err, os.ErrNotExist) {
			env.Progress.Warnf("prepare: building the BM25 index again: %v", err)
		}
		built, err := buildBM25(ctx, env.Store, cfg, env.Progress)
		if err != nil {
			return nil, fmt.Errorf("prepare: build the BM25 index: %w", err)
		}
		if err := built.WriteFile(path, fp); err != nil {
			return nil, fmt.Errorf("prepare: %w", err)
		}
		c.Add("bm25_index_built", 1)
		ix = built
	}
	defer ix.Close()
	return &PreparedBM25{File: BM25IndexFile, K1: cfg.BM25K1, B: cfg.BM25B, Passages: ix.Len(), Terms: ix.Terms(), Postings: ix.Postings()}, nil
}

// openPreparedBM25 maps the prepared folder's BM25 index (read-only,
// shared with every other run on the folder).
func openPreparedBM25(cfg *pipeline.Config, meta dataset.CorpusMeta) (*retriever.BM25, error) {
	ix, err := retriever.OpenBM25(filepath.Join(cfg.Prepared, BM25IndexFile), nil, bm25Params(cfg), bm25FileFP(meta))
	if err != nil {
		return nil, fmt.Errorf("--prepared %s: %w (run synthq prepare --out %s again)", cfg.Prepared, err, cfg.Prepared)
	}
	return ix, nil
}
