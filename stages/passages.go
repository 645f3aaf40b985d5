package stages

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// passageCache holds what a stage reads of recently used passages (of, of
// each passage read from the store), up to about budget bytes of them (as
// size counts them) in 64 shards; a shard that fills up is emptied, which
// costs re-reads, never memory growth. Candidates recur across queries
// (popular passages are read once, not once per query); the budget, not a
// count, bounds memory whatever the passages' lengths. Safe for concurrent
// use.
type passageCache[V any] struct {
	src    *passageSource
	of     func(dataset.Passage) V
	size   func(V) int
	per    int // bytes a shard may hold
	shards [64]struct {
		mu    sync.Mutex
		m     map[string]V
		bytes int
	}
}

// passageOverhead is what a cached entry costs besides its text: the map
// slot, the id and the string headers.
const passageOverhead = 96

func newPassageCache[V any](src *passageSource, budget int, of func(dataset.Passage) V, size func(V) int) *passageCache[V] {
	c := &passageCache[V]{src: src, of: of, size: size, per: max(budget/64, 1)}
	for i := range c.shards {
		c.shards[i].m = map[string]V{}
	}
	return c
}

// getAll sets out[i] to of(passage ids[i]). The passages not cached are read
// from the source (the passage texts file, else the store in one
// transaction, in key order). A passage missing from the store is an error
// naming it.
func (c *passageCache[V]) getAll(ids []string, out []V) error {
	var miss []int
	for i, id := range ids {
		sh := &c.shards[pipeline.Hash64(id)%64]
		sh.mu.Lock()
		v, ok := sh.m[id]
		sh.mu.Unlock()
		if ok {
			out[i] = v
			continue
		}
		miss = append(miss, i)
	}
	if len(miss) == 0 {
		return nil
	}
	slices.SortFunc(miss, func(a, b int) int { return cmp.Compare(ids[a], ids[b]) })
	sorted := make([]string, len(miss))
	for j, i := range miss {
		sorted[j] = ids[i]
	}
	found := make([]bool, len(miss))
	err := c.src.readEach(sorted, func(j int, p dataset.Passage) error {
		found[j] = true
		out[miss[j]] = c.of(p)
		return nil
	})
	if err != nil {
		return err
	}
	for j, i := range miss {
		if !found[j] {
			return fmt.Errorf("passage %q not in the store", ids[i])
		}
		id, v := ids[i], out[i]
		n := c.size(v) + len(id) + passageOverhead
		sh := &c.shards[pipeline.Hash64(id)%64]
		sh.mu.Lock()
		if _, ok := sh.m[id]; !ok {
			if sh.bytes+n > c.per {
				clear(sh.m)
				sh.bytes = 0
			}
			sh.m[id] = v
			sh.bytes += n
		}
		sh.mu.Unlock()
	}
	return nil
}
