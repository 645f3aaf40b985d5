package stages

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

	"github.com/synthq/synthq/adapter"
	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// AdapterData is what `synthq adapt` trains on: the exported lists of a
// store (the export's filters, top cfg.ListSize, normalised teacher scores,
// the train/dev split by source passage) with their query and passage
// vectors.
type AdapterData struct {
	Data       *adapter.Data
	Train, Dev []adapter.List
	// Fingerprint is the sha256 of everything training reads but the
	// vectors themselves (which the model and texts determine): the embed
	// run, and each list's id, split, candidates and targets.
	Fingerprint string
	// Dropped counts lists left out because the embedder refused their
	// query or source passage (a refused negative only leaves its list).
	Dropped map[string]int
	Counts  map[string]int64 // vectors read from the store and embedded, by kind
}

// LoadAdapterData reads the lists the export would write from env.Store
// and their vectors through emb for the dense run d: vectors stored by
// `synthq run` (or an earlier adapt), or in env.Prepared, are read, the rest embedded and stored
// under the same keys (so a later run reuses them), batches of
// cfg.EmbedBatch with `workers` requests in flight. window is the
// embedder's window description (EmbedWindow(cfg, …).Desc()). Memory: the
// lists, one vector per query and one per distinct candidate passage.
func LoadAdapterData(ctx context.Context, env *pipeline.Env, emb Embedder, d pipeline.DenseRun, workers int) (*AdapterData, error) {
	st, cfg := env.Store, env.Config
	t, err := dataset.ComputeTargets(ctx, st, cfg)
	if err != nil {
		return nil, err
	}
	type row struct {
		list  adapter.List
		docs  []string
		query string
		dev   bool
	}
	var rows []row
	rowOf := map[string]int32{} // passage id -> row in the passage matrix
	var pids []string
	h := sha256.New()
	fmt.Fprintf(h, "adapter-data/v1\x00%s\x00%s\x00%s\x00%s\x00", d.Model, d.QueryPrefix, d.PassagePrefix, dataset.EmbedWindow(cfg, nil).Desc())
	if err := st.Scan(pipeline.PrefixLabel, func(qid string, v []byte) error {
		var l dataset.Labelled
		if err := json.Unmarshal(v, &l); err != nil {
			return fmt.Errorf("labelled %s: %w", qid, err)
		}
		idx, drop := t.Row(&l, cfg)
		if drop != "" {
			return nil
		}
		r := row{list: adapter.List{ID: qid, Source: -1}, query: l.Query, dev: t.Split(l.DocID) == "dev"}
		fmt.Fprintf(h, "%s\x00%t\x00", qid, r.dev)
		for j, i := range idx {
			id := l.DocIDs[i]
			if id == l.DocID {
				r.list.Source = j
			}
			score := t.Normalise(l.Raw[i], cfg)
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(score))
			fmt.Fprintf(h, "%s\x00", id)
			h.Write(b[:])
			r.docs = append(r.docs, id)
			r.list.Teacher = append(r.list.Teacher, score)
			if _, ok := rowOf[id]; !ok {
				rowOf[id] = int32(len(pids))
				pids = append(pids, id)
			}
		}
		rows = append(rows, r)
		return ctx.Err()
	}); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("adapt: the store holds no exported list (run `synthq run` to the end first)")
	}
	vc := &vectorCache{st: st, prep: env.Prepared, emb: emb, model: d.Model, concurrency: max(workers, 1), batch: cfg.EmbedBatch,
		counters: env.Counters("adapt"), progress: env.Progress}
	texts := make([]string, len(pids))
	for i, id := range pids {
		var p dataset.Passage
		ok, err := st.GetJSON(dataset.DocKey(id), &p)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("adapt: passage %q of a list is not in the store", id)
		}
		texts[i] = d.PassagePrefix + p.Full()
	}
	bar := env.Progress.Start("embed passages", int64(len(texts)))
	pvecs, _, err := vc.vectors(ctx, texts, "passage")
	bar.Add(int64(len(texts)))
	bar.Finish()
	if err != nil {
		return nil, fmt.Errorf("adapt: passage vectors: %w", err)
	}
	qtexts := make([]string, len(rows))
	for i, r := range rows {
		qtexts[i] = d.QueryPrefix + r.query
	}
	bar = env.Progress.Start("embed queries", int64(len(qtexts)))
	qvecs, _, err := vc.vectors(ctx, qtexts, "query")
	bar.Add(int64(len(qtexts)))
	bar.Finish()
	if err != nil {
		return nil, fmt.Errorf("adapt: query vectors: %w", err)
	}
	out := &AdapterData{Dropped: map[string]int{}, Fingerprint: hex.EncodeToString(h.Sum(nil)),
		Counts: vc.counters.Snapshot()}
	dim := 0
	for _, v := range append(pvecs, qvecs...) {
		if v != nil {
			dim = len(v)
			break
		}
	}
	if dim == 0 {
		return nil, fmt.Errorf("adapt: the embedder answered no vector")
	}
	data := &adapter.Data{Dim: dim, Passages: make([]float32, len(pids)*dim)}
	for i, v := range pvecs {
		if v == nil {
			continue
		}
		if len(v) != dim {
			return nil, fmt.Errorf("adapt: passage %s has %d dimensions, others %d (the embedding model answered vectors of different sizes)", pids[i], len(v), dim)
		}
		copy(data.Passages[i*dim:], unitVec(v))
	}
	for i, r := range rows {
		q := qvecs[i]
		switch {
		case q == nil:
			out.Dropped["query_embedding_refused"]++
			continue
		case len(q) != dim:
			return nil, fmt.Errorf("adapt: query %s has %d dimensions, passages %d", r.list.ID, len(q), dim)
		}
		l := r.list
		l.Query = unitVec(q)
		keep := l.Teacher[:0:0]
		src := -1
		for j, id := range r.docs {
			if pvecs[rowOf[id]] == nil {
				if j == r.list.Source {
					src = -2
				}
				continue
			}
			if j == r.list.Source {
				src = len(l.Docs)
			}
			l.Docs = append(l.Docs, rowOf[id])
			keep = append(keep, r.list.Teacher[j])
		}
		if src == -2 {
			out.Dropped["source_embedding_refused"]++
			continue
		}
		l.Teacher, l.Source = keep, src
		if len(l.Docs) < 2 {
			out.Dropped["too_few_embedded_candidates"]++
			continue
		}
		if r.dev {
			out.Dev = append(out.Dev, l)
		} else {
			out.Train = append(out.Train, l)
		}
	}
	out.Data = data
	return out, nil
}

// unitVec returns v scaled to unit length (stored vectors already are; a
// server that answers unnormalised ones is normalised by the client).
func unitVec(v []float32) []float32 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 || math.Abs(n-1) < 1e-6 {
		return v
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / math.Sqrt(n))
	}
	return out
}
