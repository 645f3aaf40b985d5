package dataset

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synthq/synthq/pipeline"
)

// TestBadRecordsNeverPanic: a stored list that decodes but whose lists
// differ in length, or that holds a score that is not finite, is reported
// by key and problem (DecodeChecked), skipped by ScanJSON and counted as
// dropped by the targets, never indexed out of range.
func TestBadRecordsNeverPanic(t *testing.T) {
	st, err := pipeline.OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good := Labelled{DocID: "a", Query: "q", DocIDs: []string{"a", "b", "c"}, Ranks: []int32{1, 2, 3}, Raw: []float32{3, 1, 0}}
	bad := map[string]Labelled{
		"short-raw":   {DocID: "a", Query: "q", DocIDs: []string{"a", "b", "c"}, Ranks: []int32{1, 2, 3}, Raw: []float32{3}},
		"short-ranks": {DocID: "a", Query: "q", DocIDs: []string{"a", "b", "c"}, Ranks: []int32{1}, Raw: []float32{3, 1, 0}},
		"long-raw":    {DocID: "a", Query: "q", DocIDs: []string{"a"}, Ranks: []int32{1}, Raw: []float32{3, 1, 0}},
	}
	st.PutJSON(LabelKey("good:q:0"), good)
	for k, l := range bad {
		st.PutJSON(LabelKey(k+":q:0"), l)
	}
	// A score past float32 does not decode: an error naming the key.
	if _, err := DecodeChecked[Labelled]("l/big", []byte(`{"docid":"a","docids":["a","b"],"ranks":[1,2],"raw":[1,1e39]}`)); err == nil || !strings.Contains(err.Error(), "l/big") {
		t.Errorf("1e39: %v", err)
	}
	for k := range bad {
		_, err := DecodeChecked[Labelled](k, mustGet(t, st, LabelKey(k+":q:0")))
		var be *BadRecordError
		if !errors.As(err, &be) || !strings.Contains(err.Error(), k) {
			t.Errorf("%s: err %v, want a BadRecordError naming the key", k, err)
		}
	}
	n := 0
	if err := ScanJSON(st, pipeline.PrefixLabel, func(qid string, l Labelled) error {
		n++
		_ = l.Raw[len(l.DocIDs)-1] // what export and report do
		return nil
	}); err != nil || n != 1 {
		t.Errorf("ScanJSON handed %d records (%v), want the good one only", n, err)
	}
	cfg := &pipeline.Config{ListSize: 2, DevFraction: 0.5, Norm: "p1p99", MinTopPercentile: 25}
	tg, err := ComputeTargets(context.Background(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tg.counts["drop_"+DropInvalidRecord] < 3 {
		t.Errorf("counts %v, want the bad records dropped", tg.counts)
	}
	m := Mined{DocIDs: []string{"a", "b"}, Ranks: []int32{1}}
	if m.Check() == nil {
		t.Error("a mined list with fewer ranks than candidates passed")
	}
	h := HitList{IDs: []string{"a"}, Scores: []float32{float32(math.NaN())}}
	if h.Check() == nil {
		t.Error("a hit list with a NaN score passed")
	}
}

func mustGet(t *testing.T, st *pipeline.Store, key string) []byte {
	t.Helper()
	b, ok, err := st.Get(key)
	if !ok || err != nil {
		t.Fatalf("get %s: %v %v", key, ok, err)
	}
	return b
}
