package pipeline

import (
	"context"
	"fmt"
)

// MergedScan calls fn for every key under prefix across stores, in ascending
// key order, as if they were one store (a key present in several stores is
// given once per store, lowest store index first). Each store is read by its
// own goroutine a bounded channel ahead, so memory does not grow with the
// number of keys. from is the index of the store the entry came from.
func MergedScan(ctx context.Context, stores []*Store, prefix string, fn func(key string, val []byte, from int) error) error {
	if len(stores) == 1 {
		return stores[0].Scan(prefix, func(k string, v []byte) error { return fn(k, v, 0) })
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type entry struct {
		key string
		val []byte
	}
	chans := make([]chan entry, len(stores))
	errs := make([]chan error, len(stores))
	for i, st := range stores {
		chans[i], errs[i] = make(chan entry, 256), make(chan error, 1)
		go func(i int, st *Store) {
			defer close(chans[i])
			errs[i] <- st.Scan(prefix, func(k string, v []byte) error {
				select {
				case chans[i] <- entry{k, append([]byte(nil), v...)}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}(i, st)
	}
	heads := make([]*entry, len(stores))
	next := func(i int) error {
		e, ok := <-chans[i]
		if !ok {
			heads[i] = nil
			if err := <-errs[i]; err != nil {
				return fmt.Errorf("store %d: %w", i, err)
			}
			return nil
		}
		heads[i] = &e
		return nil
	}
	for i := range stores {
		if err := next(i); err != nil {
			return err
		}
	}
	for {
		best := -1
		for i, h := range heads {
			if h != nil && (best < 0 || h.key < heads[best].key) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		if err := fn(heads[best].key, heads[best].val, best); err != nil {
			return err
		}
		if err := next(best); err != nil {
			return err
		}
	}
}
