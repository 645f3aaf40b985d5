package stages

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/sourcegraph/conc/pool"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/retriever"
)

// vectorCache embeds texts through an Embedder and keeps every vector in the
// store under vec/<fingerprint(model, text)> (the text with its prefix), so
// a resumed or repeated run never embeds a text twice. A vector costs 4·dim
// bytes in the store.
type vectorCache struct {
	st *pipeline.Store
	// prep, when set, is a prepared corpus's read-only store: vectors
	// missing from st are read from it (never written to it).
	prep        *pipeline.Store
	emb         Embedder
	model       string
	concurrency int
	batch       int
	retryFailed bool // embed passages recorded as refused again
	counters    *pipeline.Counters
	progress    *pipeline.Progress
	scope       string // FailureScope of the run's settings
	window      string // the embedder's window (dataset.EmbedWindow.Desc), part of failure keys
}

// key is where the vector of text is stored: by model and the embedder's
// Key of the text (the text as sent, cut to the embedder's window, when
// the embedder cuts), so a changed window embeds again only the texts whose
// cut changes.
func (vc *vectorCache) key(text string) string {
	if c, ok := vc.emb.(interface{ Key(string) string }); ok {
		text = c.Key(text)
	}
	return dataset.VecKey(vc.model, text)
}

// failKey is where a passage the embedder refused is recorded: by model,
// window and passage, so another window (or model) asks again.
func (vc *vectorCache) failKey(id string) string {
	if vc.window == "" {
		return dataset.FailKey(pipeline.Fingerprint("embed-passage", vc.model, id))
	}
	return dataset.FailKey(pipeline.Fingerprint("embed-passage", vc.model, vc.window, id))
}

func encodeVec(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decodeVec(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// storedVec decodes a stored vector record (vec/…) and reports whether it
// may be used: whole float32s (a length that is a multiple of 4) making a
// valid vector (validVec). An invalid one is embedded again.
func storedVec(b []byte) ([]float32, bool) {
	if len(b)%4 != 0 {
		return nil, false
	}
	v := decodeVec(b)
	return v, validVec(v)
}

// validVec reports whether v can be a stored vector: not empty, every
// entry finite, unit length (within float32 rounding). A vector stored
// by an earlier synthq from a hostile answer (a denormal one normalised to
// [+Inf NaN …]) fails, and is embedded again rather than reused.
func validVec(v []float32) bool {
	if len(v) == 0 {
		return false
	}
	var s float64
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
		s += float64(x) * float64(x)
	}
	return math.Abs(s-1) < 1e-3
}

// vectors returns one vector per text (prefix included), reading stored
// ones (in the run's store, then the prepared one) and embedding the rest: batches of vc.batch texts, vc.concurrency
// requests in flight, each batch stored as it arrives (an interrupted run
// keeps what it paid for). Refused texts get nil and a reason in failed.
func (vc *vectorCache) vectors(ctx context.Context, texts []string, what string) ([][]float32, map[int]string, error) {
	out := make([][]float32, len(texts))
	var missing []int
	prepared := 0
	for i, t := range texts {
		k := vc.key(t)
		b, ok, err := vc.st.Get(k)
		if err != nil {
			return nil, nil, err
		}
		fromPrep := false
		if !ok && vc.prep != nil {
			if b, ok, err = vc.prep.Get(k); err != nil {
				return nil, nil, err
			}
			fromPrep = ok
		}
		if ok {
			if v, valid := storedVec(b); valid {
				out[i] = v
				if fromPrep {
					prepared++
				}
				continue
			}
			vc.counters.Add(what+"_vectors_invalid", 1) // embedded again, stored over it
		}
		missing = append(missing, i)
	}
	vc.counters.Add(what+"_vectors_cached", int64(len(texts)-len(missing)-prepared))
	if prepared > 0 {
		vc.counters.Add(what+"_vectors_prepared", int64(prepared))
	}
	failed := map[int]string{}
	if len(missing) == 0 {
		return out, failed, nil
	}
	var mu sync.Mutex
	p := pool.New().WithErrors().WithContext(ctx).WithFirstError().WithMaxGoroutines(max(vc.concurrency, 1))
	step := max(vc.batch, 1)
	for lo := 0; lo < len(missing); lo += step {
		idx := missing[lo:min(lo+step, len(missing))]
		p.Go(func(ctx context.Context) error {
			in := make([]string, len(idx))
			for j, i := range idx {
				in[j] = texts[i]
			}
			vecs, bad, err := vc.emb.Embed(ctx, in)
			if err != nil {
				return err
			}
			b := vc.st.NewBatch()
			defer b.Cancel()
			mu.Lock()
			defer mu.Unlock()
			invalid := 0
			for j, i := range idx {
				if reason, refused := bad[j]; refused {
					failed[i] = reason
					continue
				}
				if !validVec(vecs[j]) {
					// Never store a vector that is not a finite unit one.
					failed[i] = "the embedder answered a vector that is not a finite unit vector"
					invalid++
					continue
				}
				out[i] = vecs[j]
				if err := b.Put(vc.key(texts[i]), encodeVec(vecs[j])); err != nil {
					return err
				}
			}
			vc.counters.Add(what+"_vectors_embedded", int64(len(idx)-len(bad)-invalid))
			return b.Flush()
		})
	}
	if err := p.Wait(); err != nil {
		return nil, nil, err
	}
	return out, failed, nil
}

// passageIndex embeds every passage not embedded yet (prefix, title, text)
// and writes all vectors, in passage-id order, into the run's index file
// (STORE/index/dense-<fp>.ivf: one flat list for exact search, k-means
// lists for approximate search), which is memory-mapped, never held in Go
// slices. A file written before under the same fingerprint in the run's
// store is opened as it is; on a prepared corpus (vc.prep) the prepared
// folder's file is opened read-only and nothing is built (an error when it
// is missing or built with other settings). Counters: dense_index_built,
// dense_index_prepared. A passage the embedder refuses even alone is recorded as
// a failed item of the mine stage and left out of the index (BM25 still
// finds it). Memory: one chunk of texts and vectors, 4 bytes a passage
// while the lists are sorted, and the mapped file's pages.
func (vc *vectorCache) passageIndex(ctx context.Context, prefix, fp string, params retriever.IVFParams) (*retriever.IVF, error) {
	name := "dense-" + fp[:min(len(fp), 24)] + ".ivf"
	dir := filepath.Join(vc.st.Path(), "index")
	file := filepath.Join(dir, name)
	if vc.prep != nil {
		// A prepared corpus's index, mapped read-only and shared by every
		// shard: never built again here (CheckPrepared has compared the
		// settings it was built with).
		f := filepath.Join(vc.prep.Path(), "index", name)
		h, err := retriever.ReadIVFHeader(f)
		if err == nil && h.Fingerprint != fp {
			err = fmt.Errorf("built for other vectors or settings (fingerprint %.12s…, this run's %.12s…)", h.Fingerprint, fp)
		}
		var ix *retriever.IVF
		if err == nil {
			ix, err = retriever.OpenIVF(f)
		}
		if err != nil {
			return nil, fmt.Errorf("dense index of the prepared corpus: %w; run synthq prepare again on its folder", err)
		}
		vc.counters.Add("dense_index_prepared", 1)
		return ix, nil
	}
	if h, err := retriever.ReadIVFHeader(file); err == nil && h.Fingerprint == fp {
		if ix, err := retriever.OpenIVF(file); err == nil {
			return ix, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dense index: %w", err)
	}
	total, _ := vc.st.Count(pipeline.PrefixDoc)
	bar := vc.progress.Start("embed", int64(total))
	defer bar.Finish()
	var w *retriever.IVFWriter
	defer func() {
		if w != nil {
			w.Abort()
		}
	}()
	chunk := min(max(vc.batch*max(vc.concurrency, 1)*4, 1024), 1<<15)
	var ids, texts []string
	flush := func() error {
		vecs, failed, err := vc.vectors(ctx, texts, "passage")
		if err != nil {
			return err
		}
		b := vc.st.NewBatch()
		defer b.Cancel()
		for i, v := range vecs {
			if v == nil {
				vc.counters.Add("passage_embedding_failed", 1)
				f := dataset.Failure{Stage: "mine", Item: "passage " + ids[i], Reason: "embedding refused: " + redact.Text(failed[i]), Settings: vc.scope}
				if err := b.PutJSON(vc.failKey(ids[i]), f); err != nil {
					return err
				}
				continue
			}
			if w == nil {
				if w, err = retriever.NewIVFWriter(file, len(v)); err != nil {
					return err
				}
			}
			if err := w.Add(ids[i], v); err != nil {
				return fmt.Errorf("passage %s: %w (the embedding model answered vectors of different sizes)", ids[i], err)
			}
		}
		bar.Add(int64(len(ids)))
		ids, texts = ids[:0], texts[:0]
		return b.Flush()
	}
	err := dataset.ScanJSON(vc.st, pipeline.PrefixDoc, func(id string, p dataset.Passage) error {
		fk := vc.failKey(id)
		if failed, err := dataset.EarlierFailure(vc.st, fk, vc.scope); err != nil {
			return err
		} else if failed && !vc.retryFailed {
			vc.counters.Add("passage_embedding_failed", 1)
			return nil // refused before: not asked again without --retry-failed
		} else if failed {
			if err := vc.st.Delete(fk); err != nil {
				return err
			}
		}
		ids, texts = append(ids, id), append(texts, prefix+p.Full())
		if len(ids) == chunk {
			return flush()
		}
		return nil
	})
	if err == nil && len(ids) > 0 {
		err = flush()
	}
	if err != nil {
		return nil, err
	}
	bar.Finish()
	if w == nil {
		return nil, fmt.Errorf("dense index: no passage could be embedded")
	}
	// Progress of the build, one bar a step.
	var step string
	var sb *pipeline.Bar
	progress := func(s string, done, total int64) {
		if s != step {
			if sb != nil {
				sb.Finish()
			}
			step, sb = s, vc.progress.Start(map[string]string{"train": "k-means", "assign": "lists", "write": "index"}[s], total)
		}
		sb.Add(done - sb.Done())
	}
	ix, err := w.Build(ctx, params, fp, progress)
	if sb != nil {
		sb.Finish()
	}
	w = nil
	if err == nil {
		vc.counters.Add("dense_index_built", 1)
	}
	return ix, err
}
