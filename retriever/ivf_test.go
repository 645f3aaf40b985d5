package retriever

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
)

// topicalVectors makes n unit vectors of dim dimensions around topics
// centres (as embeddings of a topical corpus cluster), seeded, and queries
// drawn the same way.
func topicalVectors(n, nq, dim, topics int, seed uint64) (ids []string, vecs, queries [][]float32) {
	r := rand.New(rand.NewPCG(seed, 1))
	centres := make([][]float32, topics)
	for i := range centres {
		centres[i] = make([]float32, dim)
		for j := range centres[i] {
			centres[i][j] = float32(r.NormFloat64())
		}
	}
	draw := func() []float32 {
		c := centres[r.IntN(topics)]
		v := make([]float32, dim)
		for j := range v {
			v[j] = c[j] + float32(r.NormFloat64())*0.9
		}
		normalizeRows(v, dim)
		return v
	}
	for i := 0; i < n; i++ {
		ids = append(ids, "p"+string(rune('A'+i%26))+itoa(i))
		vecs = append(vecs, draw())
	}
	for i := 0; i < nq; i++ {
		queries = append(queries, draw())
	}
	// Exact duplicates: equal scores, so ties are exercised.
	for i := 0; i+7 < n; i += 97 {
		vecs[i+7] = vecs[i]
	}
	return ids, vecs, queries
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func buildIVF(t testing.TB, dir string, ids []string, vecs [][]float32, p IVFParams, progress IVFProgress) (*IVF, error) {
	t.Helper()
	w, err := NewIVFWriter(filepath.Join(dir, "dense.ivf"), len(vecs[0]))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		if err := w.Add(ids[i], vecs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return w.Build(context.Background(), p, "model=fake corpus=test", progress)
}

// TestIVFAllListsIsExact: probing every list returns what the exact index
// returns, scores and ties included.
func TestIVFAllListsIsExact(t *testing.T) {
	ids, vecs, qs := topicalVectors(3000, 50, 32, 20, 1)
	ix, err := buildIVF(t, t.TempDir(), ids, vecs, IVFParams{Lists: 40, Seed: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	d := NewDense(32)
	for i := range ids {
		d.Add(ids[i], vecs[i])
	}
	ctx := context.Background()
	want, _ := d.SearchBatch(ctx, qs, 100, 0)
	got, err := ix.SearchBatch(ctx, qs, 100, ix.Lists(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("all lists probed differ from exact search; first query: %v\nwant %v", got[0][:3], want[0][:3])
	}
	if ix.Header.Fingerprint != "model=fake corpus=test" || ix.Header.Dim != 32 || ix.Header.Passages != 3000 || ix.Header.Params.Lists != 40 {
		t.Errorf("header %+v", ix.Header)
	}
}

// TestIVFRecall: the default probe finds at least 97% of the exact top 100
// on a seeded topical set.
func TestIVFRecall(t *testing.T) {
	ids, vecs, qs := topicalVectors(20000, 200, 64, 100, 2)
	ix, err := buildIVF(t, t.TempDir(), ids, vecs, IVFParams{Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	ctx := context.Background()
	exact, _ := ix.SearchBatch(ctx, qs, 100, ix.Lists(), 0)
	approx, err := ix.SearchBatch(ctx, qs, 100, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := RecallAt(100, approx, exact)
	t.Logf("lists %d probe %d recall@100 %.4f", ix.Lists(), DefaultProbe(ix.Lists()), r)
	if r < 0.97 {
		t.Errorf("recall@100 = %.4f, want ≥ 0.97", r)
	}
	few, _ := ix.SearchBatch(ctx, qs, 100, 1, 0)
	if r1 := RecallAt(100, few, exact); r1 >= r {
		t.Errorf("one list probed: recall %.4f, not below %d lists' %.4f", r1, DefaultProbe(ix.Lists()), r)
	}
}

// TestIVFBuildDeterministicAndResumable: the same vectors give the same
// file bytes whatever the cores; a build killed in the middle (here: its
// context cancelled during k-means) leaves no index, and the next build
// writes the same bytes as one never interrupted.
func TestIVFBuildDeterministicAndResumable(t *testing.T) {
	ids, vecs, _ := topicalVectors(5000, 0, 16, 30, 4)
	p := IVFParams{Lists: 50, Seed: 9}
	dirA := t.TempDir()
	a, err := buildIVF(t, dirA, ids, vecs, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	dirB := t.TempDir()
	w, _ := NewIVFWriter(filepath.Join(dirB, "dense.ivf"), 16)
	for i := range ids {
		w.Add(ids[i], vecs[i])
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = w.Build(ctx, p, "model=fake corpus=test", func(step string, done, total int64) {
		if step == "train" && done == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled build: err = %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dirB, "*")); len(left) != 0 {
		t.Fatalf("a killed build left %v", left)
	}
	old := setProcs(1)
	b, err := buildIVF(t, dirB, ids, vecs, p, nil)
	setProcs(old)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	fa, _ := os.ReadFile(filepath.Join(dirA, "dense.ivf"))
	fb, _ := os.ReadFile(filepath.Join(dirB, "dense.ivf"))
	if !bytes.Equal(fa, fb) {
		t.Fatal("the rebuilt index differs from the uninterrupted one")
	}
	if h, err := ReadIVFHeader(filepath.Join(dirA, "dense.ivf")); err != nil || h.Params != p.withDefaults(5000) || h.Passages != 5000 {
		t.Errorf("header %+v, %v", h, err)
	}
}

func TestIVFOpenRejects(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "x.ivf")
	os.WriteFile(bad, bytes.Repeat([]byte{1}, 5000), 0o644)
	if _, err := OpenIVF(bad); err == nil {
		t.Error("opened a file that is not an index")
	}
	ids, vecs, _ := topicalVectors(100, 0, 8, 3, 5)
	ix, err := buildIVF(t, dir, ids, vecs, IVFParams{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "dense.ivf"))
	os.WriteFile(bad, b[:len(b)-4], 0o644)
	if _, err := OpenIVF(bad); err == nil {
		t.Error("opened a truncated index")
	}
	if math.IsNaN(RecallAt(10, nil, nil)) {
		t.Error("recall of nothing")
	}
}

func setProcs(n int) int { return runtime.GOMAXPROCS(n) }
