package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
)

// MergeExport writes one dataset from the stores of the N shards of a run
// (`synthq run --shard i/N` on each machine), byte-identical to what one
// machine would have written: the labelled lists are merged in qid order,
// a query whose normalised text an earlier passage (in passage-id, type,
// sample order, as one machine's filter sees them) also asked is dropped as
// the single-machine filter would have dropped it, and the percentiles,
// filters and split are computed over the union. env.Store must be
// stores[0]; env.Config holds the run's settings with the export's
// overrides. Every store must come from the same corpus and settings, and
// the shards must be complete (0/N … N-1/N).
func MergeExport(ctx context.Context, env *pipeline.Env, stores []*pipeline.Store, names []string) error {
	cfg := env.Config
	var corpus0 dataset.CorpusMeta
	var fp0 string
	seen := map[uint64]string{}
	var total uint64
	stats := map[string]pipeline.StageStats{}
	for i, st := range stores {
		var c pipeline.Config
		if ok, err := st.GetJSON(dataset.MetaConfig, &c); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("merge: store %s holds no run", names[i])
		}
		var cm dataset.CorpusMeta
		if _, err := st.GetJSON(dataset.MetaCorpus, &cm); err != nil {
			return err
		}
		si, sn, err := c.ShardOf()
		if err != nil {
			return fmt.Errorf("merge: store %s: %w", names[i], err)
		}
		if i == 0 {
			corpus0, fp0, total = cm, c.Fingerprint(), sn
		}
		switch {
		case cm.SHA256 != corpus0.SHA256:
			return fmt.Errorf("merge: store %s was made from another corpus than %s", names[i], names[0])
		case c.Fingerprint() != fp0:
			return fmt.Errorf("merge: store %s was run with other settings than %s (only --shard may differ)", names[i], names[0])
		case sn != total:
			return fmt.Errorf("merge: store %s is shard %s, %s is one of %d", names[i], c.Shard, names[0], total)
		case seen[si] != "":
			return fmt.Errorf("merge: stores %s and %s are both shard %s", seen[si], names[i], c.Shard)
		}
		seen[si] = names[i]
		st1, err := pipeline.LoadStats(st)
		if err != nil {
			return err
		}
		for name, s := range st1 {
			agg := stats[name]
			if agg.Counts == nil {
				agg.Counts = map[string]int64{}
			}
			for k, v := range s.Counts {
				agg.Counts[k] += v
			}
			agg.Seconds = max(agg.Seconds, s.Seconds) // shards run side by side
			if s.Finished.After(agg.Finished) {
				agg.Finished = s.Finished
			}
			stats[name] = agg
		}
	}
	for i := uint64(0); i < total; i++ {
		if seen[i] == "" {
			return fmt.Errorf("merge: shard %d/%d is missing (given: %d stores)", i, total, len(stores))
		}
	}
	dupes, err := crossShardDuplicates(ctx, stores, cfg)
	if err != nil {
		return err
	}
	if f := stats["filter"]; f.Counts != nil {
		f.Counts["drop_"+dataset.DropDuplicateAcrossShards] = int64(len(dupes))
		f.Counts["kept"] -= int64(len(dupes))
	}
	labels := func(ctx context.Context, fn func(qid string, v []byte) error) error {
		return pipeline.MergedScan(ctx, stores, pipeline.PrefixLabel, func(qid string, v []byte, _ int) error {
			if dupes[qid] {
				return nil
			}
			return fn(qid, v)
		})
	}
	return exportFrom(ctx, env, labels, stats, nil)
}

// crossShardDuplicates finds the kept queries of the shards that one
// machine's filter would have dropped as duplicates in the corpus: for each
// normalised text, every holder but the first in (passage id, type, sample)
// order. It reads the query tables twice: first it keeps one 64-bit hash per
// kept query (8 bytes each, sorted to find the texts held more than once),
// then the holders of those texts only.
func crossShardDuplicates(ctx context.Context, stores []*pipeline.Store, cfg *pipeline.Config) (map[string]bool, error) {
	type holder struct {
		doc        string
		typ, sampl int
		qid        string
	}
	before := func(a, b holder) bool {
		if a.doc != b.doc {
			return a.doc < b.doc
		}
		if a.typ != b.typ {
			return a.typ < b.typ
		}
		return a.sampl < b.sampl
	}
	kept := func(fn func(qid string, q dataset.Query, h uint64) error) error {
		return pipeline.MergedScan(ctx, stores, pipeline.PrefixQuery, func(qid string, v []byte, _ int) error {
			var q dataset.Query
			if err := json.Unmarshal(v, &q); err != nil {
				return fmt.Errorf("query %s: %w", qid, err)
			}
			if q.Drop != "" {
				return nil
			}
			return fn(qid, q, pipeline.Hash64(prompts.Normalize(q.Text)))
		})
	}
	var hashes []uint64
	if err := kept(func(_ string, _ dataset.Query, h uint64) error { hashes = append(hashes, h); return nil }); err != nil {
		return nil, err
	}
	slices.Sort(hashes)
	shared := map[uint64]bool{} // texts held by more than one query
	for i := 1; i < len(hashes); i++ {
		if hashes[i] == hashes[i-1] {
			shared[hashes[i]] = true
		}
	}
	hashes = nil
	first := map[uint64]holder{}
	dupes := map[string]bool{}
	err := kept(func(qid string, q dataset.Query, h uint64) error {
		if !shared[h] {
			return nil
		}
		me := holder{q.DocID, slices.Index(cfg.QueryTypes, q.Type), q.Sample, qid}
		prev, ok := first[h]
		switch {
		case !ok:
			first[h] = me
		case before(me, prev):
			dupes[prev.qid] = true
			first[h] = me
		default:
			dupes[qid] = true
		}
		return nil
	})
	return dupes, err
}
