package stages

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"sync"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/retriever"
)

// recallMaxQueries bounds the recall self-check: each sampled query is
// also searched exactly (2·passages·dim flops).
const recallMaxQueries = 1000

// RecallWarn is the recall@K under which a run warns.
const RecallWarn = 0.95

// recallCheck keeps a dense run's index record (dataset.DenseIndexInfo):
// for an approximate index it searches every 64th query (by a seeded hash
// of its text, at most recallMaxQueries) exactly too and adds up recall@K.
type recallCheck struct {
	st       *pipeline.Store
	key      string
	seed     uint64
	progress *pipeline.Progress
	mu       sync.Mutex
	rec      dataset.DenseIndexInfo
	warned   bool
}

// start records the index; a resumed run keeps the sample it had.
func (rc *recallCheck) start(ix *retriever.IVF) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var old dataset.DenseIndexInfo
	if ok, err := rc.st.GetJSON(rc.key, &old); err != nil {
		return err
	} else if ok && old.RunFP == rc.rec.RunFP {
		rc.rec.Queries, rc.rec.Found, rc.rec.Wanted, rc.rec.Recall = old.Queries, old.Found, old.Wanted, old.Recall
	}
	rc.rec.Passages, rc.rec.Dim, rc.rec.File = ix.Len(), ix.Dim(), ix.Path()
	return rc.st.PutJSON(rc.key, rc.rec)
}

// sampled says whether query text is in the recall sample.
func (rc *recallCheck) sampled(text string) bool {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rc.seed)
	h.Write(b[:])
	h.Write([]byte(text))
	return h.Sum64()%64 == 0
}

// check searches the sampled queries of a chunk exactly and adds how many
// of their exact hits the approximate search found.
func (rc *recallCheck) check(ctx context.Context, ix *retriever.IVF, qs []string, at []int, vecs [][]float32, approx [][]retriever.Hit) error {
	rc.mu.Lock()
	room := recallMaxQueries - rc.rec.Queries
	rc.mu.Unlock()
	var sample [][]float32
	var got [][]retriever.Hit
	for k, j := range at {
		if len(sample) < room && rc.sampled(qs[j]) {
			sample, got = append(sample, vecs[k]), append(got, approx[k])
		}
	}
	if len(sample) == 0 {
		return nil
	}
	exact, err := ix.SearchBatch(ctx, sample, rc.rec.K, ix.Lists(), 0)
	if err != nil {
		return err
	}
	found, wanted := retriever.RecallCounts(rc.rec.K, got, exact)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.rec.Queries += len(sample)
	rc.rec.Found += int64(found)
	rc.rec.Wanted += int64(wanted)
	if rc.rec.Wanted > 0 {
		rc.rec.Recall = float64(rc.rec.Found) / float64(rc.rec.Wanted)
	}
	if !rc.warned && rc.rec.Queries >= 50 && rc.rec.Recall < RecallWarn {
		rc.warned = true
		rc.progress.Warnf("warning: dense run %s: the approximate index finds %.3f of the exact top %d (%d sampled queries), below %.2f: raise --dense-probe (now %d of %d lists) or use --dense-index exact\n",
			rc.rec.Run, rc.rec.Recall, rc.rec.K, rc.rec.Queries, RecallWarn, rc.rec.Probe, rc.rec.Lists)
	}
	return rc.st.PutJSON(rc.key, rc.rec)
}
