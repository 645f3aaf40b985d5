package stages

import (
	"fmt"
	"sync"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// passageCache holds what a stage reads of recently used passages (of, of
// each passage read from the store), up to about capacity of them in 64
// shards; a shard that fills up is emptied, which costs re-reads, never
// memory growth. Safe for concurrent use.
type passageCache[V any] struct {
	st     *pipeline.Store
	of     func(dataset.Passage) V
	per    int
	shards [64]struct {
		mu sync.Mutex
		m  map[string]V
	}
}

func newPassageCache[V any](st *pipeline.Store, capacity int, of func(dataset.Passage) V) *passageCache[V] {
	c := &passageCache[V]{st: st, of: of, per: max(capacity/64, 1)}
	for i := range c.shards {
		c.shards[i].m = map[string]V{}
	}
	return c
}

// get returns of(passage id) from the cache, or reads the passage from the
// store (one Get).
func (c *passageCache[V]) get(id string) (V, error) {
	sh := &c.shards[pipeline.Hash64(id)%64]
	sh.mu.Lock()
	v, ok := sh.m[id]
	sh.mu.Unlock()
	if ok {
		return v, nil
	}
	var p dataset.Passage
	if ok, err := c.st.GetJSON(dataset.DocKey(id), &p); err != nil {
		return v, err
	} else if !ok {
		return v, fmt.Errorf("passage %q not in the store", id)
	}
	v = c.of(p)
	sh.mu.Lock()
	if len(sh.m) >= c.per {
		clear(sh.m)
	}
	sh.m[id] = v
	sh.mu.Unlock()
	return v, nil
}
