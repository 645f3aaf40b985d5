// Package adapter trains a query-side linear adapter over frozen embeddings
// from synthq's labelled lists: a d×d matrix W, initialised to the identity
// (or W = I + U·Vᵀ with U, V of rank r), applied to query vectors only, so
// the passage vectors of an existing index stay valid. Training distils the
// teacher's listwise scores into the student's cosines with the listwise
// distillation paper's loss (KL(softmax(teacher/0.3) ‖ softmax(cos/0.05))
// over each query's list), optionally plus 0.1 × InfoNCE at temperature 0.01
// with likely false negatives masked.
//
// Everything is plain Go in float64 (the matrix is written as float32): at
// d ≤ 1024 the work is matrix-vector products and rank-one sums, which simple
// loops do at memory speed, and owning the reduction order is what makes the
// output bytes identical for a seed whatever the number of cores.
package adapter

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Model is the adapter: q' = W·q with W = I + U·Vᵀ (Rank > 0) or a full W
// (Rank 0). The zero-rank model holds d² float64s; a rank-r one 2·d·r.
type Model struct {
	Dim  int
	Rank int       // 0: full matrix
	W    []float64 // Dim×Dim row-major, when Rank == 0
	U, V []float64 // Dim×Rank row-major each, when Rank > 0
	// LogScale, when set (one value), is the trained log(1/student
	// temperature) of the loss; it does not change rankings, only how
	// sharp the student's softmax is during training.
	LogScale []float64
}

// NewModel returns the identity adapter. A low-rank model starts with U = 0
// and V drawn from a seeded normal of standard deviation 1/√d (LoRA's
// start: W = I exactly, yet the gradient of U is not zero).
func NewModel(dim, rank int, seed uint64) (*Model, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("adapter: dimension %d", dim)
	}
	if rank < 0 || rank > dim {
		return nil, fmt.Errorf("adapter: rank %d outside 0..%d", rank, dim)
	}
	m := &Model{Dim: dim, Rank: rank}
	if rank == 0 {
		m.W = make([]float64, dim*dim)
		for i := range dim {
			m.W[i*dim+i] = 1
		}
		return m, nil
	}
	m.U, m.V = make([]float64, dim*rank), make([]float64, dim*rank)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	s := 1 / math.Sqrt(float64(dim))
	for i := range m.V {
		m.V[i] = rng.NormFloat64() * s
	}
	return m, nil
}

// params is the flat view of the trained parameters (W, or U then V).
func (m *Model) params() [][]float64 {
	p := [][]float64{m.U, m.V}
	if m.Rank == 0 {
		p = [][]float64{m.W}
	}
	if m.LogScale != nil {
		p = append(p, m.LogScale)
	}
	return p
}

// StudentTemp is the student temperature the model trains with: the
// learned one, or the loss's.
func (m *Model) StudentTemp(l Loss) float64 {
	if m.LogScale != nil {
		return math.Exp(-m.LogScale[0])
	}
	return l.StudentTemp
}

// clone returns a deep copy.
func (m *Model) clone() *Model {
	c := &Model{Dim: m.Dim, Rank: m.Rank}
	c.W = append([]float64(nil), m.W...)
	c.U = append([]float64(nil), m.U...)
	c.V = append([]float64(nil), m.V...)
	if m.LogScale != nil {
		c.LogScale = append([]float64(nil), m.LogScale...)
	}
	if m.Rank == 0 {
		c.U, c.V = nil, nil
	} else {
		c.W = nil
	}
	return c
}

// apply writes W·q into out (len Dim) and, for a low-rank model, Vᵀ·q
// into z (len Rank). Cost: d² (full) or 2·d·r multiply-adds.
func (m *Model) apply(q []float32, out, z []float64) {
	d := m.Dim
	if m.Rank == 0 {
		for i := range d {
			row := m.W[i*d : i*d+d]
			var s float64
			for j, x := range q {
				s += row[j] * float64(x)
			}
			out[i] = s
		}
		return
	}
	r := m.Rank
	clear(z)
	for j, x := range q {
		row := m.V[j*r : j*r+r]
		for k := range r {
			z[k] += row[k] * float64(x)
		}
	}
	for i := range d {
		row := m.U[i*r : i*r+r]
		s := float64(q[i])
		for k := range r {
			s += row[k] * z[k]
		}
		out[i] = s
	}
}

// Matrix returns W as float32, Dim×Dim row-major (out × in): the transform
// is q'[i] = Σ_j W[i][j]·q[j], torch.nn.Linear's weight layout.
func (m *Model) Matrix() []float32 {
	d := m.Dim
	out := make([]float32, d*d)
	if m.Rank == 0 {
		for i, x := range m.W {
			out[i] = float32(x)
		}
		return out
	}
	r := m.Rank
	for i := range d {
		for j := range d {
			s := 0.0
			if i == j {
				s = 1
			}
			for k := range r {
				s += m.U[i*r+k] * m.V[j*r+k]
			}
			out[i*d+j] = float32(s)
		}
	}
	return out
}

// Apply transforms one query vector with a float32 matrix from Matrix or
// Load and returns it scaled to unit length (a zero vector is returned
// as is). Ranking by inner product with unit passage vectors is unchanged by
// the scale. Cost: d² multiply-adds.
func Apply(w []float32, q []float32) []float32 {
	d := len(q)
	out := make([]float32, d)
	var n float64
	for i := range d {
		row := w[i*d : i*d+d]
		var s float64
		for j, x := range q {
			s += float64(row[j]) * float64(x)
		}
		out[i] = float32(s)
		n += s * s
	}
	if n > 0 {
		inv := 1 / math.Sqrt(n)
		for i := range out {
			out[i] = float32(float64(out[i]) * inv)
		}
	}
	return out
}
