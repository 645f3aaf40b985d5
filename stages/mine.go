package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"sync"

	"github.com/sourcegraph/conc/stream"

	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/retriever"
)

// Mining drop reasons.
const (
	DropRoundtrip       = "roundtrip_miss"
	DropFewCandidates   = "few_candidates"
	RemovedDuplicateDoc = "removed_duplicate_of_source"
)

// hitList is a stored retrieval result (hits/<fingerprint>).
type hitList struct {
	IDs    []string  `json:"ids"`
	Scores []float32 `json:"scores"`
}

// MineStage retrieves cfg.Candidates passages for every kept query with the
// built-in BM25 (Lucene/Anserini-compatible), storing each hit list under the
// fingerprint of (retriever settings, corpus, k, query). The index is built
// only when some query's hits are not stored. It applies the round-trip
// filter (source passage in the top cfg.RoundtripK; 0 disables), removes
// candidates that duplicate the source passage's text, and drops queries left
// with fewer than cfg.MinCandidates candidates.
func MineStage() pipeline.Stage {
	return pipeline.Stage{Name: "mine", Doc: "retrieve candidate passages", Run: runMine}
}

func runMine(ctx context.Context, env *pipeline.Env) error {
	cfg, st := env.Config, env.Store
	c := env.Counters("mine")
	if err := st.DropPrefix(pipeline.PrefixMined); err != nil {
		return err
	}
	var meta corpusMeta
	if _, err := st.GetJSON(pipeline.PrefixMeta+"corpus", &meta); err != nil {
		return err
	}
	// Passages sharing a text hash duplicate each other.
	hashOf := map[string]uint64{}
	groups := map[uint64][]string{}
	if err := st.Scan(pipeline.PrefixDoc, func(id string, v []byte) error {
		var p Passage
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("passage %q: %w", id, err)
		}
		hashOf[id] = p.Hash
		groups[p.Hash] = append(groups[p.Hash], id)
		return nil
	}); err != nil {
		return err
	}
	var (
		once  sync.Once
		index *retriever.BM25
		ixErr error
	)
	getIndex := func() (*retriever.BM25, error) {
		once.Do(func() {
			b := retriever.NewBM25Builder(nil, &retriever.BM25Params{K1: float32(cfg.BM25K1), B: float32(cfg.BM25B)})
			ixErr = st.Scan(pipeline.PrefixDoc, func(id string, v []byte) error {
				var p Passage
				if err := json.Unmarshal(v, &p); err != nil {
					return fmt.Errorf("passage %q: %w", id, err)
				}
				b.Add(id, p.Full())
				return nil
			})
			index = b.Build()
		})
		return index, ixErr
	}
	retFP := pipeline.Fingerprint("bm25/v1", strconv.FormatFloat(cfg.BM25K1, 'g', -1, 64),
		strconv.FormatFloat(cfg.BM25B, 'g', -1, 64), meta.SHA256, strconv.Itoa(cfg.Candidates))

	total, _ := st.Count(pipeline.PrefixQuery)
	bar := env.Progress.Start("mine", int64(total))
	defer bar.Finish()
	batch := st.NewBatch()
	defer batch.Cancel()
	s := stream.New().WithMaxGoroutines(runtime.GOMAXPROCS(0) * 2)
	var firstErr error
	var errMu sync.Mutex
	setErr := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	scanErr := st.Scan(pipeline.PrefixQuery, func(qid string, v []byte) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errMu.Lock()
		ferr := firstErr
		errMu.Unlock()
		if ferr != nil {
			return ferr
		}
		var q Query
		if err := json.Unmarshal(v, &q); err != nil {
			return fmt.Errorf("query %s: %w", qid, err)
		}
		if q.Drop != "" {
			bar.Add(1)
			return nil
		}
		s.Go(func() stream.Callback {
			m, cached, err := mineOne(ctx, st, getIndex, retFP, cfg, q, hashOf, groups)
			return func() {
				bar.Add(1)
				if err != nil {
					setErr(fmt.Errorf("query %s: %w", qid, err))
					return
				}
				if cached {
					c.Add("cached", 1)
				} else {
					c.Add("searched", 1)
				}
				if m.Drop != "" {
					c.Add("drop_"+m.Drop, 1)
				} else {
					c.Add("kept", 1)
				}
				if err := batch.PutJSON(pipeline.PrefixMined+qid, m); err != nil {
					setErr(err)
				}
			}
		})
		return nil
	})
	s.Wait()
	if scanErr != nil {
		return scanErr
	}
	if firstErr != nil {
		return firstErr
	}
	return batch.Flush()
}

func mineOne(ctx context.Context, st *pipeline.Store, getIndex func() (*retriever.BM25, error), retFP string,
	cfg *pipeline.Config, q Query, hashOf map[string]uint64, groups map[uint64][]string) (Mined, bool, error) {
	key := pipeline.PrefixHits + pipeline.Fingerprint(retFP, q.Text)
	var hl hitList
	cached, err := st.GetJSON(key, &hl)
	if err != nil {
		return Mined{}, false, err
	}
	if !cached {
		ix, err := getIndex()
		if err != nil {
			return Mined{}, false, err
		}
		hits, err := ix.Search(ctx, q.Text, cfg.Candidates)
		if err != nil {
			return Mined{}, false, err
		}
		hl = hitList{IDs: make([]string, len(hits)), Scores: make([]float32, len(hits))}
		for i, h := range hits {
			hl.IDs[i], hl.Scores[i] = h.DocID, h.Score
		}
		if err := st.PutJSON(key, hl); err != nil {
			return Mined{}, false, err
		}
	}
	m := Mined{DocID: q.DocID, Type: q.Type, Query: q.Text}
	srcHash := hashOf[q.DocID]
	dupes := groups[srcHash]
	srcRank := 0
	for i, id := range hl.IDs {
		if id == q.DocID {
			srcRank = i + 1
		} else if len(dupes) > 1 && hashOf[id] == srcHash {
			continue // a copy of the source passage is not a negative
		}
		m.DocIDs = append(m.DocIDs, id)
		m.Ranks = append(m.Ranks, int32(i+1))
	}
	switch {
	case cfg.RoundtripK > 0 && (srcRank == 0 || srcRank > cfg.RoundtripK):
		m.Drop = DropRoundtrip
	case srcRank == 0:
		// Round trip disabled and the source was not retrieved: it still
		// belongs in its own list, at first-pass rank 0 ("not retrieved").
		m.DocIDs = append(m.DocIDs, q.DocID)
		m.Ranks = append(m.Ranks, 0)
	}
	if m.Drop == "" && len(m.DocIDs) < cfg.MinCandidates {
		m.Drop = DropFewCandidates
	}
	if m.Drop != "" {
		m.DocIDs, m.Ranks = nil, nil
	}
	return m, cached, nil
}
