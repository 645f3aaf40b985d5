package stages

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synthq/synthq/pipeline"
)

// TestExportBytesStable exports a store whose text columns hold several MB of
// distinct values (enough for a Parquet dictionary to overflow and fall back
// mid-chunk) three times and requires identical bytes each time.
func TestExportBytesStable(t *testing.T) {
	st, err := pipeline.OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		b := make([]byte, 3+r.IntN(8))
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		return string(b)
	}
	const docs = 3000
	batch := st.NewBatch()
	for i := 0; i < docs; i++ {
		ws := make([]string, 150)
		for j := range ws {
			ws[j] = word()
		}
		if err := batch.PutJSON(pipeline.PrefixDoc+fmt.Sprintf("d%04d", i), Passage{Text: strings.Join(ws, " ")}); err != nil {
			t.Fatal(err)
		}
	}
	for q := 0; q < 3000; q++ {
		l := Labelled{DocID: fmt.Sprintf("d%04d", q), Type: "questions", Query: word() + " " + word()}
		for k := 0; k < 20; k++ {
			id := fmt.Sprintf("d%04d", (q+k*97)%docs)
			l.DocIDs = append(l.DocIDs, id)
			l.Ranks = append(l.Ranks, int32(k+1))
			l.Raw = append(l.Raw, float32(20-k)+r.Float32())
		}
		if err := batch.PutJSON(pipeline.PrefixLabel+QID(l.DocID, "questions", 0), l); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Flush(); err != nil {
		t.Fatal(err)
	}
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
