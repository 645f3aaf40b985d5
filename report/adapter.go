package report

import (
	"github.com/synthq/synthq/adapter"
	"github.com/synthq/synthq/pipeline"
)

// adapterKey is where `synthq adapt` records the last adapter it trained
// on a store (adapter.Record: settings, dev before/after, curve).
const adapterKey = pipeline.PrefixMeta + "adapter"

// loadAdapter reads the store's adapter record; nil when none was trained.
func loadAdapter(st *pipeline.Store) (*adapter.Record, error) {
	var r adapter.Record
	ok, err := st.GetJSON(adapterKey, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}
