package adapter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"time"
)

// Options are the training settings; zero fields take the defaults of
// EnsureDefaults.
type Options struct {
	Rank      int     // 0: full d×d matrix; r > 0: W = I + U·Vᵀ of rank r
	Loss      Loss    // zero value: DefaultLoss()
	Epochs    int     // most epochs (default 20)
	Patience  int     // stop after this many epochs without a better dev KL (default 3)
	BatchSize int     // lists per Adam step (default 32)
	LR        float64 // Adam's learning rate (default 1e-3)
	Seed      uint64  // shuffling and the low-rank start
	// Workers is how many goroutines compute a batch (default GOMAXPROCS).
	// The result does not depend on it: every sum has a fixed order.
	Workers  int
	Progress func(e Epoch, took time.Duration) // called after every epoch (and epoch 0)
}

// EnsureDefaults fills the zero fields.
func (o *Options) EnsureDefaults() {
	if o.Loss == (Loss{}) {
		o.Loss = DefaultLoss()
	}
	if o.Epochs == 0 {
		o.Epochs = 20
	}
	if o.Patience == 0 {
		o.Patience = 3
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if o.LR == 0 {
		o.LR = 1e-3
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
}

// Metrics describe a model on a set of lists.
type Metrics struct {
	Lists int     `json:"lists"`
	KL    float64 `json:"kl"` // mean KL(teacher ‖ student) over the lists: the listwise loss
	// NDCG10 ranks each list by the student's cosine with the teacher's
	// normalised scores as gains (linear), against the teacher's own order.
	NDCG10 float64 `json:"ndcg@10"`
	// SourceTop1 is the fraction of lists whose source passage the student ranks first.
	SourceTop1 float64 `json:"source_top1"`
}

// Epoch is one point of the training curve; epoch 0 is the identity.
type Epoch struct {
	Epoch     int     `json:"epoch"`
	TrainLoss float64 `json:"train_loss"` // mean objective over the epoch's lists (epoch 0: at the identity)
	Dev       Metrics `json:"dev"`
}

// Result is a finished training.
type Result struct {
	Model     *Model  // the epoch with the best dev KL (the last one without dev lists)
	Best      int     // its epoch
	Curve     []Epoch // epoch 0 (identity) first
	Stopped   string  // why training stopped: "patience", "epochs" or "no improvement"
	Before    Metrics // train-split metrics at the identity and with the kept model
	After     Metrics
	TrainSize int
}

// Train fits an adapter on train and stops early on dev (which may be
// empty: then every epoch runs and the last is kept). Each epoch shuffles
// the training lists with a seeded generator and takes one Adam step per
// batch; a batch's lists are computed on opt.Workers goroutines and their
// gradients summed in list order, so the result is a function of the data
// and the options alone. Cost per epoch: about 3·d² multiply-adds per list
// for a full matrix (6·d·r for rank r), plus 2·k·d for k candidates.
func Train(ctx context.Context, d *Data, train, dev []List, opt Options) (*Result, error) {
	opt.EnsureDefaults()
	if len(train) == 0 {
		return nil, errors.New("adapter: no training lists")
	}
	for _, set := range [][]List{train, dev} {
		if err := (&Data{Dim: d.Dim, Passages: d.Passages, Lists: set}).Validate(); err != nil {
			return nil, err
		}
	}
	m, err := NewModel(d.Dim, opt.Rank, opt.Seed)
	if err != nil {
		return nil, err
	}
	if opt.Loss.LearnTemp {
		m.LogScale = []float64{calibrate(m, d, train, opt.Loss, opt.Workers)}
	}
	tr := &trainer{d: d, opt: opt, m: m}
	tr.init()
	res := &Result{TrainSize: len(train)}
	start := time.Now()
	e0 := Epoch{Dev: Evaluate(m, d, dev, opt.Loss, opt.Workers)}
	e0.TrainLoss = objective(m, d, train, opt.Loss, opt.Workers)
	res.Curve = append(res.Curve, e0)
	if opt.Progress != nil {
		opt.Progress(e0, time.Since(start))
	}
	best, bestKL, since := m.clone(), e0.Dev.KL, 0
	order := make([]int, len(train))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0xada))
	res.Stopped = "epochs"
	for ep := 1; ep <= opt.Epochs; ep++ {
		start := time.Now()
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var sum float64
		for lo := 0; lo < len(order); lo += opt.BatchSize {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			hi := min(lo+opt.BatchSize, len(order))
			batch := make([]*List, hi-lo)
			for i, at := range order[lo:hi] {
				batch[i] = &train[at]
			}
			sum += tr.step(batch)
		}
		e := Epoch{Epoch: ep, TrainLoss: sum / float64(len(order)), Dev: Evaluate(m, d, dev, opt.Loss, opt.Workers)}
		res.Curve = append(res.Curve, e)
		if opt.Progress != nil {
			opt.Progress(e, time.Since(start))
		}
		if len(dev) == 0 {
			best, res.Best = m.clone(), ep
			continue
		}
		if e.Dev.KL < bestKL {
			best, bestKL, res.Best, since = m.clone(), e.Dev.KL, ep, 0
			continue
		}
		if since++; since >= opt.Patience {
			res.Stopped = "patience"
			break
		}
	}
	if res.Best == 0 {
		res.Stopped = "no improvement"
	}
	res.Model = best
	res.Before = res.Curve[0].Dev
	res.After = res.Curve[res.Best].Dev
	return res, nil
}

// trainer holds Adam's state and the per-batch buffers.
type trainer struct {
	d     *Data
	opt   Options
	m     *Model
	adam  []adamState // one per parameter slice
	t     int         // Adam steps taken
	grads [][]float64
	sc    []*scratch
	// per list of a batch
	g, z, h      [][]float64
	loss, dScale []float64
}

type adamState struct{ m, v []float64 }

func (tr *trainer) init() {
	for _, p := range tr.m.params() {
		tr.adam = append(tr.adam, adamState{m: make([]float64, len(p)), v: make([]float64, len(p))})
		tr.grads = append(tr.grads, make([]float64, len(p)))
	}
	for range tr.opt.Workers {
		tr.sc = append(tr.sc, newScratch(tr.m.Dim, tr.m.Rank))
	}
	b := tr.opt.BatchSize
	tr.g, tr.z, tr.h, tr.loss, tr.dScale = make([][]float64, b), make([][]float64, b), make([][]float64, b), make([]float64, b), make([]float64, b)
	for i := range b {
		tr.g[i], tr.z[i], tr.h[i] = make([]float64, tr.m.Dim), make([]float64, tr.m.Rank), make([]float64, tr.m.Rank)
	}
}

// parallel runs fn over [0, n) split into at most w contiguous ranges, one
// goroutine each; worker index wi owns its range.
func parallel(n, w int, fn func(wi, lo, hi int)) {
	w = max(1, min(w, n))
	if w == 1 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	per := (n + w - 1) / w
	for wi := range w {
		lo, hi := wi*per, min((wi+1)*per, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() { defer wg.Done(); fn(wi, lo, hi) }()
	}
	wg.Wait()
}

// step takes one Adam step on the mean objective of batch and returns the
// batch's summed loss.
func (tr *trainer) step(batch []*List) float64 {
	sum := tr.gradient(batch)
	tr.update()
	return sum
}

// gradient computes the gradient of the batch's mean objective into
// tr.grads and returns the batch's summed loss.
func (tr *trainer) gradient(batch []*List) float64 {
	m, dim, r := tr.m, tr.m.Dim, tr.m.Rank
	parallel(len(batch), tr.opt.Workers, func(wi, lo, hi int) {
		sc := tr.sc[wi]
		for i := lo; i < hi; i++ {
			tr.loss[i] = m.listLoss(tr.d, batch[i], tr.opt.Loss, sc, true)
			tr.dScale[i] = sc.dScale
			copy(tr.g[i], sc.g)
			if r > 0 {
				copy(tr.z[i], sc.z)
				h := tr.h[i] // Uᵀ·g
				clear(h)
				for k := range dim {
					row := m.U[k*r : k*r+r]
					for c := range r {
						h[c] += row[c] * sc.g[k]
					}
				}
			}
		}
	})
	var sum, ds float64
	for i := range batch {
		sum += tr.loss[i]
		ds += tr.dScale[i]
	}
	inv := 1 / float64(len(batch))
	if m.LogScale != nil {
		tr.grads[len(tr.grads)-1][0] = ds * inv
	}
	// Gradients by row, each row's sum over the batch in list order.
	parallel(dim, tr.opt.Workers, func(_, lo, hi int) {
		for k := lo; k < hi; k++ {
			if r == 0 {
				row := tr.grads[0][k*dim : k*dim+dim]
				clear(row)
				for i, l := range batch {
					gk := tr.g[i][k] * inv
					if gk == 0 {
						continue
					}
					for j, x := range l.Query {
						row[j] += gk * float64(x)
					}
				}
				continue
			}
			du, dv := tr.grads[0][k*r:k*r+r], tr.grads[1][k*r:k*r+r]
			clear(du)
			clear(dv)
			for i, l := range batch {
				gk, qk := tr.g[i][k]*inv, float64(l.Query[k])*inv
				for c := range r {
					du[c] += gk * tr.z[i][c]
					dv[c] += qk * tr.h[i][c]
				}
			}
		}
	})
	return sum
}

// update takes one Adam step with tr.grads.
func (tr *trainer) update() {
	m := tr.m
	tr.t++
	const b1, b2, eps = 0.9, 0.999, 1e-8
	c1 := 1 - math.Pow(b1, float64(tr.t))
	c2 := 1 - math.Pow(b2, float64(tr.t))
	lr := tr.opt.LR
	for pi, p := range m.params() {
		g, st := tr.grads[pi], tr.adam[pi]
		parallel(len(p), tr.opt.Workers, func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				st.m[i] = b1*st.m[i] + (1-b1)*g[i]
				st.v[i] = b2*st.v[i] + (1-b2)*g[i]*g[i]
				p[i] -= lr * (st.m[i] / c1) / (math.Sqrt(st.v[i]/c2) + eps)
			}
		})
	}
}

// calibrate returns the log(1/student temperature) that minimises the mean
// KL of lists under m: a golden-section search over temperatures from
// 0.002 to 2 (the KL is unimodal in it), 40 evaluations.
func calibrate(m *Model, d *Data, lists []List, loss Loss, workers int) float64 {
	kl := loss
	kl.InfoNCE = 0
	f := func(x float64) float64 {
		m.LogScale = []float64{x}
		return objective(m, d, lists, kl, workers)
	}
	a, b := math.Log(0.5), math.Log(500.0)
	g := (math.Sqrt(5) - 1) / 2
	c, e := b-g*(b-a), a+g*(b-a)
	fc, fe := f(c), f(e)
	for range 40 {
		if fc < fe {
			b, e, fe = e, c, fc
			c = b - g*(b-a)
			fc = f(c)
		} else {
			a, c, fc = c, e, fe
			e = a + g*(b-a)
			fe = f(e)
		}
	}
	return (a + b) / 2
}

// objective is the mean training objective over lists.
func objective(m *Model, d *Data, lists []List, loss Loss, workers int) float64 {
	if len(lists) == 0 {
		return 0
	}
	out := make([]float64, len(lists))
	parallel(len(lists), workers, func(_, lo, hi int) {
		sc := newScratch(m.Dim, m.Rank)
		for i := lo; i < hi; i++ {
			out[i] = m.listLoss(d, &lists[i], loss, sc, false)
		}
	})
	var s float64
	for _, x := range out {
		s += x
	}
	return s / float64(len(lists))
}

// Evaluate measures m on lists: the listwise KL (the loss without its
// contrastive term), nDCG@10 of the student's order with teacher gains, and
// how often the student ranks the source first.
func Evaluate(m *Model, d *Data, lists []List, loss Loss, workers int) Metrics {
	if len(lists) == 0 {
		return Metrics{}
	}
	kl := loss
	kl.InfoNCE = 0
	type one struct{ kl, ndcg, top1 float64 }
	out := make([]one, len(lists))
	parallel(len(lists), workers, func(_, lo, hi int) {
		sc := newScratch(m.Dim, m.Rank)
		for i := lo; i < hi; i++ {
			l := &lists[i]
			out[i].kl = m.listLoss(d, l, kl, sc, false)
			out[i].ndcg = ndcg10(sc.cos[:len(l.Docs)], l.Teacher)
			if l.Source >= 0 && argmax(sc.cos[:len(l.Docs)]) == l.Source {
				out[i].top1 = 1
			}
		}
	})
	var mt Metrics
	for _, o := range out {
		mt.KL += o.kl
		mt.NDCG10 += o.ndcg
		mt.SourceTop1 += o.top1
	}
	n := float64(len(lists))
	mt.Lists, mt.KL, mt.NDCG10, mt.SourceTop1 = len(lists), mt.KL/n, mt.NDCG10/n, mt.SourceTop1/n
	return mt
}

func argmax(x []float64) int {
	b := 0
	for i, v := range x {
		if v > x[b] {
			b = i
		}
	}
	return b
}

// ndcg10 is nDCG@10 of the order of scores (ties to the earlier
// candidate) with gains, against the order of the gains themselves.
func ndcg10(scores []float64, gains []float32) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	dcg := func(less func(a, b int) bool) float64 {
		sort.SliceStable(idx, func(a, b int) bool { return less(idx[a], idx[b]) })
		var s float64
		for r, i := range idx[:min(10, len(idx))] {
			s += float64(gains[i]) / math.Log2(float64(r+2))
		}
		return s
	}
	got := dcg(func(a, b int) bool { return scores[a] > scores[b] })
	for i := range idx {
		idx[i] = i
	}
	ideal := dcg(func(a, b int) bool { return gains[a] > gains[b] })
	if ideal == 0 {
		return 0
	}
	return got / ideal
}

// String is one progress line.
func (e Epoch) String() string {
	return fmt.Sprintf("epoch %d: train loss %.4f  dev KL %.4f  nDCG@10 %.4f  source@1 %.3f", e.Epoch, e.TrainLoss, e.Dev.KL, e.Dev.NDCG10, e.Dev.SourceTop1)
}
