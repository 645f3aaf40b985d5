package stages

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/retriever"
)

// The BM25 build shows a bar that counts the passages analysed and the
// index's passes, and ends full; the index holds every passage.
func TestBuildBM25Progress(t *testing.T) {
	st, err := pipeline.OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 20_000 // more than one analysis chunk
	batch := st.NewBatch()
	for i := 0; i < n; i++ {
		p := dataset.Passage{Text: fmt.Sprintf("passage %d about topic%d and topic%d", i, i%97, i%13)}
		if err := batch.PutJSON(dataset.DocKey(fmt.Sprintf("d%05d", i)), p); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Flush(); err != nil {
		t.Fatal(err)
	}
	progress := pipeline.NewProgress(io.Discard, false, false)
	cfg := pipeline.DefaultConfig()
	ix, err := buildBM25(context.Background(), st, cfg, progress)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != n {
		t.Errorf("index holds %d passages, want %d", ix.Len(), n)
	}
	bar, ok := progress.Bars()["bm25 index"]
	if !ok {
		t.Fatalf("no bm25 index bar: %v", progress.Bars())
	}
	want := int64(n + n/retriever.BM25BuildShare)
	if bar.Total != want || bar.Done != bar.Total || !bar.Ended {
		t.Errorf("bar %+v, want %d of %d units, ended", bar, want, want)
	}
	// A cancelled build stops.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := buildBM25(ctx, st, cfg, nil); err == nil {
		t.Error("a cancelled build went on")
	}
}
