package pipeline

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestBarsWriteOneLineAtATime: stages that run side by side (mining ahead
// builds the BM25 and the dense index at once) share one writer; their
// lines never interleave (and -race finds no data race on the writer).
func TestBarsWriteOneLineAtATime(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf, false, false)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				b := p.Start(fmt.Sprintf("stage%d-%d", i, j), 10)
				b.Add(10)
				b.Finish()
				p.Warnf("warning %d-%d\n", i, j)
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 8*20*2 {
		t.Fatalf("%d lines, want at least %d", len(lines), 8*20*2)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "stage") && !strings.HasPrefix(l, "warning") || strings.Count(l, "stage") > 1 {
			t.Fatalf("interleaved line %q", l)
		}
	}
}
