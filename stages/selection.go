package stages

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/dedup"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
)

// Reasons a passage gets no queries.
const (
	SkipDuplicate  = "duplicate"   // a near or exact duplicate of an earlier passage
	SkipHoldout    = "holdout"     // kept out by --holdout
	SkipNotSampled = "not_sampled" // outside the --max-passages sample
)

// Selection says which passages are asked about. Every shard computes the
// same one, since it reads the whole corpus. It is stored under
// meta/selection with the settings that made it and recomputed only when
// they or the corpus change.
type Selection struct {
	Key string `json:"key"`
	// Duplicates maps a duplicate passage to the earlier kept passage it
	// duplicates (--dedup near or exact).
	Duplicates map[string]string `json:"duplicates"`
	// Holdout lists the held-out passages, sorted.
	Holdout []string `json:"holdout,omitempty"`
	// SampleCut: with --max-passages, a passage is in the sample when its
	// sample hash is at most SampleCut (the N smallest hashes of the
	// passages neither duplicate nor held out). 0 without a sample.
	SampleCut uint64 `json:"sample_cut,omitempty"`
	Sampled   bool   `json:"sampled,omitempty"`

	holdout map[string]bool
	seed    uint64
}

// Skip is why a passage gets no queries, or "" if it gets them.
func (s *Selection) Skip(docID string) string {
	switch {
	case s.Duplicates[docID] != "":
		return SkipDuplicate
	case s.holdout[docID]:
		return SkipHoldout
	case s.Sampled && sampleHash(s.seed, docID) > s.SampleCut:
		return SkipNotSampled
	}
	return ""
}

// Root is the kept passage a passage duplicates, or the passage itself.
func (s *Selection) Root(docID string) string {
	if r := s.Duplicates[docID]; r != "" {
		return r
	}
	return docID
}

func sampleHash(seed uint64, docID string) uint64 {
	return pipeline.Mix64(pipeline.Hash64("sample", strconv.FormatUint(seed, 10), docID))
}

func holdoutHash(seed uint64, docID string) uint64 {
	return pipeline.Mix64(pipeline.Hash64("holdout", strconv.FormatUint(seed, 10), docID))
}

func selectionKey(cfg *pipeline.Config, corpusSHA string) string {
	return pipeline.Fingerprint("selection/v1", corpusSHA, cfg.Dedup, strconv.FormatFloat(cfg.DedupThreshold, 'g', -1, 64),
		strconv.Itoa(cfg.MaxPassages), strconv.Itoa(cfg.Holdout), strconv.FormatUint(cfg.Seed, 10))
}

// LoadSelection returns the run's selection, computing and storing it when
// the stored one was made with other settings or another corpus. Cost of a
// computation: one pass over the passages (MinHash for --dedup near: about
// 128 multiply-adds per word), memory as dedup.Finder states; it shows as
// the "select" bar of prog (nil: none). Stages that ask at the same time
// wait for the first to compute it.
func LoadSelection(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, prog *pipeline.Progress) (*Selection, error) {
	defer st.Exclusive("selection")()
	sel, ok, key, err := storedSelection(st, cfg)
	if err != nil {
		return nil, err
	}
	if !ok {
		if sel, err = computeSelection(ctx, st, cfg, key, prog); err != nil {
			return nil, err
		}
		// The MinHash signatures and the scan's buffers are garbage now:
		// ~0.5 GB at 1M passages, which the BM25 build would otherwise
		// find still mapped beside its own (BENCHMARKS.md "Millions of
		// passages").
		returnGarbage()
		if err := st.PutJSON(dataset.MetaSelection, sel); err != nil {
			return nil, err
		}
	}
	return sel.ready(cfg), nil
}

// StoredSelection is the run's selection as stored, without computing or
// writing anything; ok is false when none was stored for cfg's settings.
func StoredSelection(st *pipeline.Store, cfg *pipeline.Config) (sel *Selection, ok bool, err error) {
	s, ok, _, err := storedSelection(st, cfg)
	if err != nil || !ok {
		return nil, false, err
	}
	return s.ready(cfg), true, nil
}

func storedSelection(st *pipeline.Store, cfg *pipeline.Config) (sel Selection, ok bool, key string, err error) {
	var meta dataset.CorpusMeta
	if _, err := st.GetJSON(dataset.MetaCorpus, &meta); err != nil {
		return sel, false, "", err
	}
	key = selectionKey(cfg, meta.SHA256)
	found, err := st.GetJSON(dataset.MetaSelection, &sel)
	if err != nil {
		return sel, false, key, err
	}
	return sel, found && sel.Key == key, key, nil
}

// ready fills the fields Skip needs that are not stored.
func (sel Selection) ready(cfg *pipeline.Config) *Selection {
	sel.seed = cfg.Seed
	sel.holdout = make(map[string]bool, len(sel.Holdout))
	for _, id := range sel.Holdout {
		sel.holdout[id] = true
	}
	return &sel
}

func computeSelection(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, key string, prog *pipeline.Progress) (Selection, error) {
	sel := Selection{Key: key, Duplicates: map[string]string{}}
	var meta dataset.CorpusMeta
	if _, err := st.GetJSON(dataset.MetaCorpus, &meta); err != nil {
		return sel, err
	}
	bar := prog.Start("select", int64(meta.Passages))
	defer bar.Finish()
	var ids []string
	var finder *dedup.Finder
	if cfg.Dedup == "near" {
		finder = dedup.NewFinder(dedup.Options{Threshold: cfg.DedupThreshold, Seed: cfg.Seed})
	}
	firstOf := map[uint64]string{} // exact: normalised hash -> first passage
	err := st.Scan(pipeline.PrefixDoc, func(id string, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ids = append(ids, id)
		bar.Add(1)
		if cfg.Dedup == "off" {
			return nil
		}
		var p dataset.Passage
		if err := dataset.DecodePassage(v, &p); err != nil {
			return fmt.Errorf("passage %q: %w", id, err)
		}
		norm := prompts.Normalize(p.Full())
		if finder != nil {
			finder.Add(strings.Fields(norm))
			return nil
		}
		h := pipeline.Hash64(norm)
		if first, seen := firstOf[h]; seen {
			sel.Duplicates[id] = first
		} else {
			firstOf[h] = id
		}
		return nil
	})
	if err != nil {
		return Selection{}, fmt.Errorf("select passages: %w", err)
	}
	if finder != nil {
		for j, i := range finder.Duplicates() {
			if i >= 0 {
				sel.Duplicates[ids[j]] = ids[i]
			}
		}
	}
	pick := func(n int, hash func(string) uint64, skip func(string) bool) ([]string, uint64) {
		h := &maxHeap{}
		for _, id := range ids {
			if skip(id) {
				continue
			}
			x := hash(id)
			if h.Len() < n {
				heap.Push(h, idHash{id, x})
			} else if x < (*h)[0].h {
				(*h)[0] = idHash{id, x}
				heap.Fix(h, 0)
			}
		}
		var out []string
		var top uint64
		for _, e := range *h {
			out = append(out, e.id)
			top = max(top, e.h)
		}
		slices.Sort(out)
		return out, top
	}
	if cfg.Holdout > 0 {
		sel.Holdout, _ = pick(cfg.Holdout, func(id string) uint64 { return holdoutHash(cfg.Seed, id) },
			func(id string) bool { return sel.Duplicates[id] != "" })
	}
	if cfg.MaxPassages > 0 {
		held := map[string]bool{}
		for _, id := range sel.Holdout {
			held[id] = true
		}
		var in []string
		in, sel.SampleCut = pick(cfg.MaxPassages, func(id string) uint64 { return sampleHash(cfg.Seed, id) },
			func(id string) bool { return sel.Duplicates[id] != "" || held[id] })
		sel.Sampled = len(in) == cfg.MaxPassages // fewer eligible passages than N: all of them
	}
	return sel, nil
}

type idHash struct {
	id string
	h  uint64
}

// maxHeap keeps the n smallest hashes (largest on top).
type maxHeap []idHash

func (h maxHeap) Len() int           { return len(h) }
func (h maxHeap) Less(i, j int) bool { return h[i].h > h[j].h }
func (h maxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxHeap) Push(x any)        { *h = append(*h, x.(idHash)) }
func (h *maxHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
