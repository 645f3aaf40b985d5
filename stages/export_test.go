package stages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// TestExportBytesStable exports a store whose text columns hold several MB of
// distinct values (enough for a Parquet dictionary to overflow and fall back
// mid-chunk) three times and requires identical bytes each time.
func TestExportBytesStable(t *testing.T) {
	st := labelledStore(t, 3000, 3000, 150)
	var err error
	var first map[string][]byte
	for run := 0; run < 3; run++ {
		out := t.TempDir()
		cfg := &pipeline.Config{Out: out, RequireSourceTop1: true, DevFraction: 0.1}
		cfg.EnsureDefaults()
		env := &pipeline.Env{Store: st, Config: cfg}
		if err := runExport(context.Background(), env, nil); err != nil {
			t.Fatal(err)
		}
		got := map[string][]byte{}
		for _, f := range []string{"train.arrow", "dev.arrow", "train.parquet", "dev.parquet"} {
			if got[f], err = os.ReadFile(filepath.Join(out, f)); err != nil {
				t.Fatal(err)
			}
		}
		if run == 0 {
			first = got
			if len(got["train.parquet"]) < 1<<20 {
				t.Fatalf("train.parquet is %d bytes: too small to exercise dictionary overflow", len(got["train.parquet"]))
			}
			continue
		}
		for f, b := range got {
			if !bytes.Equal(b, first[f]) {
				t.Errorf("export %d: %s differs from the first export", run+1, f)
			}
		}
	}
}

// labelledStore makes a store of docs passages of the given number of
// random words and queries labelled lists of 20 candidates each.
func labelledStore(t *testing.T, docs, queries, words int) *pipeline.Store {
	t.Helper()
	st, err := pipeline.OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		b := make([]byte, 3+r.IntN(8))
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		return string(b)
	}
	batch := st.NewBatch()
	for i := 0; i < docs; i++ {
		ws := make([]string, words)
		for j := range ws {
			ws[j] = word()
		}
		if err := batch.PutJSON(dataset.DocKey(fmt.Sprintf("d%04d", i)), dataset.Passage{Title: word(), Text: strings.Join(ws, " ")}); err != nil {
			t.Fatal(err)
		}
	}
	for q := 0; q < queries; q++ {
		l := dataset.Labelled{DocID: fmt.Sprintf("d%04d", q%docs), Type: "questions", Query: word() + " " + word()}
		for k := 0; k < 20; k++ {
			id := fmt.Sprintf("d%04d", (q+k*97)%docs)
			l.DocIDs = append(l.DocIDs, id)
			l.Ranks = append(l.Ranks, int32(k+1))
			l.Raw = append(l.Raw, float32(20-k)+r.Float32())
		}
		if err := batch.PutJSON(dataset.LabelKey(dataset.QID(l.DocID, "questions", q/docs)), l); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Flush(); err != nil {
		t.Fatal(err)
	}
	return st
}

// An export that fails part-way (here: the labelled lists stop with an
// error after 150 of 300 rows) leaves the previous export as it was, with
// no staged file behind; a cancelled one likewise.
func TestExportFailureKeepsPreviousSet(t *testing.T) {
	st := labelledStore(t, 300, 300, 20)
	out := t.TempDir()
	cfg := &pipeline.Config{Out: out, RequireSourceTop1: true, DevFraction: 0.1, Formats: []string{"arrow", "parquet", "jsonl"}}
	cfg.EnsureDefaults()
	env := &pipeline.Env{Store: st, Config: cfg}
	if err := runExport(context.Background(), env, nil); err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]string {
		got := map[string]string{}
		entries, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(out, e.Name()))
			got[e.Name()] = string(b)
		}
		return got
	}
	before := snapshot()
	injected := errors.New("injected")
	// midway reads the labelled lists as the store does, and in the rows
	// pass (the fifth: the targets read them three times, the export's
	// digest once) calls stop after 150 rows and returns what it returns.
	midway := func(stop func() error) dataset.Labels {
		pass := 0
		return func(ctx context.Context, fn func(string, []byte) error) error {
			pass++
			n := 0
			return dataset.StoreLabels(st)(ctx, func(qid string, v []byte) error {
				if n++; pass == 5 && n == 150 {
					if err := stop(); err != nil {
						return err
					}
				}
				return fn(qid, v)
			})
		}
	}
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"error mid-export", func() error {
			c := *cfg
			c.Formats = []string{"jsonl"}
			return exportFrom(context.Background(), &pipeline.Env{Store: st, Config: &c}, midway(func() error { return injected }), nil, nil)
		}},
		{"cancelled", func() error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := *cfg
			c.Formats = []string{"jsonl", "arrow"} // another set than OUT's: written, not kept
			return exportFrom(ctx, &pipeline.Env{Store: st, Config: &c}, midway(func() error { cancel(); return nil }), nil, nil)
		}},
	} {
		err := tc.run()
		if !errors.Is(err, injected) && !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: export returned %v", tc.name, err)
		}
		after := snapshot()
		if len(after) != len(before) {
			t.Errorf("%s: OUT holds %d entries, had %d", tc.name, len(after), len(before))
		}
		for name, content := range before {
			if after[name] != content {
				t.Errorf("%s: %s changed", tc.name, name)
			}
		}
		if _, err := os.Stat(filepath.Join(out, stagingDir)); err == nil {
			t.Errorf("%s: staging folder left behind", tc.name)
		}
	}
}
