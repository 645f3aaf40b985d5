package adapter

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func unit(v []float32) []float32 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / math.Sqrt(n))
	}
	return v
}

// synthetic makes lists whose teacher prefers the passages close to a
// hidden transform of the query (a scaled-up half of the dimensions), so
// the identity is wrong in a way an adapter can learn.
func synthetic(dim, passages, lists, k int, seed uint64) (*Data, []List, []List) {
	rng := rand.New(rand.NewPCG(seed, 7))
	d := &Data{Dim: dim, Passages: make([]float32, passages*dim)}
	common := make([]float64, dim) // embeddings share a direction, as real ones do
	for j := range common {
		common[j] = rng.NormFloat64()
	}
	for i := range passages {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(common[j] + 0.6*rng.NormFloat64())
		}
		copy(d.Passages[i*dim:], unit(v))
	}
	hidden := func(q []float32) []float32 {
		out := make([]float32, dim)
		for j, x := range q {
			if j < dim/2 {
				out[j] = 3 * x
			} else {
				out[j] = x / 3
			}
		}
		return out
	}
	var all []List
	for li := range lists {
		docs := make([]int32, k)
		perm := rng.Perm(passages)
		for j := range k {
			docs[j] = int32(perm[j])
		}
		src := d.Passages[int(docs[0])*dim : int(docs[0])*dim+dim]
		q := make([]float32, dim)
		for j := range q {
			q[j] = src[j] + float32(rng.NormFloat64())*0.1
		}
		unit(q)
		h := hidden(q)
		raw := make([]float64, k)
		for j, r := range docs {
			for i, x := range d.Passages[int(r)*dim : int(r)*dim+dim] {
				raw[j] += float64(x) * float64(h[i])
			}
		}
		lo, hi := slices.Min(raw), slices.Max(raw)
		scores := make([]float32, k) // rescaled to [0, 1] as the export does
		for j := range raw {
			scores[j] = float32((raw[j] - lo) / (hi - lo))
		}
		all = append(all, List{ID: string(rune('a' + li%26)), Query: q, Docs: docs, Teacher: scores, Source: 0})
	}
	cut := lists * 4 / 5
	return d, all[:cut], all[cut:]
}

// TestGradientMatchesFiniteDifferences checks the analytic gradient of the
// batch objective against central differences for each loss and model shape.
func TestGradientMatchesFiniteDifferences(t *testing.T) {
	d, train, _ := synthetic(8, 40, 6, 7, 1)
	for _, tc := range []struct {
		name    string
		rank    int
		infoNCE float64
		learn   bool
	}{{"full/kl", 0, 0, false}, {"full/kl+infonce", 0, 0.1, false}, {"rank3/kl", 3, 0, false}, {"rank3/kl+infonce", 3, 0.1, false},
		{"full/kl/learned-temp", 0, 0, true}, {"rank3/kl+infonce/learned-temp", 3, 0.1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			loss := DefaultLoss()
			loss.InfoNCE = tc.infoNCE
			loss.FalseNegRatio = 0.9 // mask some candidates in these lists
			loss.LearnTemp = tc.learn
			opt := Options{Rank: tc.rank, Loss: loss, BatchSize: len(train), Workers: 2, Seed: 3}
			opt.EnsureDefaults()
			m, _ := NewModel(d.Dim, tc.rank, 3)
			if tc.learn {
				m.LogScale = []float64{math.Log(15)}
			}
			// Move away from the identity so the check is not at a special point.
			rng := rand.New(rand.NewPCG(9, 9))
			for _, p := range m.params() {
				for i := range p {
					p[i] += rng.NormFloat64() * 0.2
				}
			}
			tr := &trainer{d: d, opt: opt, m: m}
			tr.init()
			batch := make([]*List, len(train))
			for i := range train {
				batch[i] = &train[i]
			}
			tr.gradient(batch)
			mean := func() float64 { return objective(m, d, train, loss, 1) }
			const h = 1e-6
			worst := 0.0
			for pi, p := range m.params() {
				for i := range p {
					old := p[i]
					p[i] = old + h
					up := mean()
					p[i] = old - h
					down := mean()
					p[i] = old
					num := (up - down) / (2 * h)
					got := tr.grads[pi][i]
					rel := math.Abs(num-got) / math.Max(1e-4, math.Abs(num)+math.Abs(got))
					worst = math.Max(worst, rel)
					if rel > 1e-4 {
						t.Fatalf("param %d[%d]: analytic %.8g, finite difference %.8g", pi, i, got, num)
					}
				}
			}
			t.Logf("worst relative error %.2g", worst)
		})
	}
}

// TestLossHandComputed checks the KL loss on a two-candidate list by hand.
func TestLossHandComputed(t *testing.T) {
	d := &Data{Dim: 2, Passages: []float32{1, 0, 0, 1}}
	l := List{Query: unit([]float32{3, 1}), Docs: []int32{0, 1}, Teacher: []float32{1, 0}, Source: 0}
	m, _ := NewModel(2, 0, 0)
	got := m.listLoss(d, &l, DefaultLoss(), newScratch(2, 0), false)
	n := math.Hypot(float64(l.Query[0]), float64(l.Query[1]))
	c0, c1 := float64(l.Query[0])/n, float64(l.Query[1])/n
	t0 := math.Exp(1/0.3) / (math.Exp(1/0.3) + 1)
	s0 := math.Exp(c0/0.05) / (math.Exp(c0/0.05) + math.Exp(c1/0.05))
	want := t0*math.Log(t0/s0) + (1-t0)*math.Log((1-t0)/(1-s0))
	if math.Abs(got-want) > 1e-12 {
		t.Fatalf("KL %.15g, want %.15g", got, want)
	}
}

func TestTrainingLearnsTheHiddenTransform(t *testing.T) {
	d, train, dev := synthetic(16, 300, 500, 12, 2)
	for _, rank := range []int{0, 4} {
		res, err := Train(context.Background(), d, train, dev, Options{Rank: rank, Epochs: 15, LR: 3e-3, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rank %d: dev KL %.4f -> %.4f, nDCG@10 %.4f -> %.4f (best epoch %d, %s)", rank,
			res.Before.KL, res.After.KL, res.Before.NDCG10, res.After.NDCG10, res.Best, res.Stopped)
		if res.After.KL > 0.8*res.Before.KL || res.After.NDCG10 <= res.Before.NDCG10 {
			t.Errorf("rank %d: dev KL %.4f -> %.4f, nDCG@10 %.4f -> %.4f: the adapter learned nothing", rank,
				res.Before.KL, res.After.KL, res.Before.NDCG10, res.After.NDCG10)
		}
	}
}

// TestDeterministicWhateverTheWorkers: the same seed gives the same bytes
// with 1, 2 or 5 goroutines; another seed gives other bytes.
func TestDeterministicWhateverTheWorkers(t *testing.T) {
	d, train, dev := synthetic(12, 100, 120, 8, 3)
	file := func(workers int, seed uint64, rank int) []byte {
		loss := DefaultLoss()
		loss.InfoNCE = 0.1
		res, err := Train(context.Background(), d, train, dev, Options{Rank: rank, Loss: loss, Epochs: 3, BatchSize: 16, Seed: seed, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := WriteSafetensors(&b, res.Model.Matrix(), d.Dim, map[string]string{"k": "v"}); err != nil {
			t.Fatal(err)
		}
		curve, _ := json.Marshal(res.Curve)
		return append(b.Bytes(), curve...)
	}
	for _, rank := range []int{0, 3} {
		one := file(1, 5, rank)
		for _, w := range []int{2, 5} {
			if !bytes.Equal(one, file(w, 5, rank)) {
				t.Errorf("rank %d: %d workers give other bytes than 1", rank, w)
			}
		}
		if bytes.Equal(one, file(2, 6, rank)) {
			t.Errorf("rank %d: seeds 5 and 6 give the same bytes", rank)
		}
	}
}

func TestIdentityChangesNoRanking(t *testing.T) {
	m, _ := NewModel(5, 0, 0)
	w := m.Matrix()
	q := unit([]float32{0.3, -1, 2, 0.5, 0})
	got := Apply(w, q)
	for i := range q {
		if math.Abs(float64(got[i]-q[i])) > 1e-7 {
			t.Fatalf("identity adapter moved %v to %v", q, got)
		}
	}
	lr, _ := NewModel(5, 2, 4) // U = 0: the identity too
	for i, x := range lr.Matrix() {
		if x != w[i] {
			t.Fatalf("low-rank start is not the identity at %d: %v", i, x)
		}
	}
}

func TestSafetensorsRoundTripAndLayout(t *testing.T) {
	w := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	meta := map[string]string{"embed_model": "m", "dims": "3"}
	var b bytes.Buffer
	if err := WriteSafetensors(&b, w, 3, meta); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	n := binary.LittleEndian.Uint64(raw)
	if (8+n)%8 != 0 || int(8+n+36) != len(raw) {
		t.Fatalf("header %d bytes, file %d: want the data 8-aligned and 36 bytes long", n, len(raw))
	}
	want := `{"__metadata__":{"dims":"3","embed_model":"m"},"linear.weight":{"dtype":"F32","shape":[3,3],"data_offsets":[0,36]}}`
	if got := strings.TrimRight(string(raw[8:8+n]), " "); got != want {
		t.Fatalf("header\n%s\nwant\n%s", got, want)
	}
	p := filepath.Join(t.TempDir(), "a.safetensors")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := ReadSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	if a.Dim != 3 || a.Meta["embed_model"] != "m" || a.Matrix[5] != 6 {
		t.Fatalf("read back %+v", a)
	}
	if err := os.WriteFile(p, raw[:len(raw)-4], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSafetensors(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("truncated file: %v", err)
	}
}
