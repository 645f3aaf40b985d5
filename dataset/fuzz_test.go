package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/synthq/synthq/pipeline"
)

// FuzzLabelledRecord feeds any bytes as a stored labelled list (l/<qid>)
// to what export and report do with it: DecodeChecked either accepts it or
// rejects it, never both; the targets count a rejected list as
// invalid_record and never keep it; an accepted list is either dropped for
// a reason or kept with candidate indices that are in range of its ids,
// ranks and raw scores, each once, its source among them, and every
// exported score finite and in [0, 1]. Seeded from lists as synthq writes
// them and the damaged shapes the audit found.
func FuzzLabelledRecord(f *testing.F) {
	good := Labelled{DocID: "a", Type: "question", Query: "q", DocIDs: []string{"a", "b", "c"}, Ranks: []int32{1, 2, 0}, Raw: []float32{3.5, -1, 0.25}}
	b, _ := json.Marshal(good)
	f.Add(uint8(2), b)
	for _, s := range []string{
		`{"docid":"a","docids":["a","b","c"],"ranks":[1,2,3],"raw":[3]}`,
		`{"docid":"a","docids":["a","b","c"],"ranks":[1],"raw":[3,1,0]}`,
		`{"docid":"a","docids":["a"],"ranks":[1],"raw":[3,1,0]}`,
		`{"docid":"a","docids":["b","a"],"ranks":[1,2],"raw":[1,1e39]}`,
		`{"docid":"a","docids":["b","a","a"],"ranks":[0,0,2],"raw":[2,1,1]}`,
		`{"docid":"a","docids":[],"ranks":[],"raw":[]}`,
		`{"docid":"a","docids":null}`,
	} {
		f.Add(uint8(2), []byte(s))
	}
	f.Fuzz(func(t *testing.T, list uint8, b []byte) {
		cfg := pipeline.DefaultConfig()
		cfg.ListSize = int(list%4) + 2
		cfg.RequireSourceTop1 = list&4 != 0
		cfg.Norm = []string{"", "minmax", "none"}[int(list>>3)%3]
		cfg.MinTopPercentile = 0
		if list&64 != 0 {
			cfg.MinTopPercentile = 25
		}
		l, err := DecodeChecked[Labelled]("l/x:question:0", b)
		var bad *BadRecordError
		isBad := errors.As(err, &bad)
		if err == nil {
			if cerr := l.Check(); cerr != nil {
				t.Fatalf("decoded and accepted, yet Check says %v", cerr)
			}
		}
		goodB, _ := json.Marshal(good)
		labels := Labels(func(ctx context.Context, fn func(string, []byte) error) error {
			if err := fn("g:question:0", goodB); err != nil {
				return err
			}
			return fn("x:question:0", b)
		})
		tg, terr := TargetsOf(context.Background(), labels, cfg)
		switch {
		case err != nil && !isBad:
			if terr == nil {
				t.Fatal("a record that does not decode passed the targets silently")
			}
			return
		case terr != nil:
			t.Fatalf("targets over a decodable record: %v", terr)
		case isBad:
			if tg.DropCounts()["drop_"+DropInvalidRecord] != 1 {
				t.Fatalf("a rejected record (%v) not counted invalid: %v", err, tg.DropCounts())
			}
			return
		}
		idx, drop := tg.Row(&l, cfg)
		if drop != "" {
			if idx != nil {
				t.Fatalf("dropped (%s) with indices %v", drop, idx)
			}
			return
		}
		if len(idx) == 0 || len(idx) > cfg.ListSize {
			t.Fatalf("%d candidates kept for a list of %d", len(idx), cfg.ListSize)
		}
		seen := map[int]bool{}
		source := false
		for _, i := range idx {
			if i < 0 || i >= len(l.DocIDs) || i >= len(l.Raw) || i >= len(l.Ranks) || seen[i] {
				t.Fatalf("index %d kept out of range or twice (%d ids)", i, len(l.DocIDs))
			}
			seen[i] = true
			source = source || l.DocIDs[i] == l.DocID
			s := tg.Normalise(l.Raw[i], cfg)
			if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) || (cfg.Norm != "none" && (s < 0 || s > 1)) {
				t.Fatalf("exported score %v for raw %v", s, l.Raw[i])
			}
		}
		hasSource := false
		for _, id := range l.DocIDs {
			hasSource = hasSource || id == l.DocID
		}
		if hasSource && !source {
			t.Fatalf("source %q not kept: %v of %v", l.DocID, idx, l.DocIDs)
		}
	})
}
