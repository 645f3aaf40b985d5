package adapter

import (
	"fmt"
	"math"
)

// Data is what training reads: unit-length passage vectors in one flat
// matrix (4·Dim bytes a passage) and the lists that point into it.
type Data struct {
	Dim      int
	Passages []float32 // len(ids)×Dim row-major, unit rows
	Lists    []List
}

// List is one query's labelled list: its unit query vector, the rows of its
// candidates in Data.Passages and their teacher scores (normalised to
// [0, 1] as exported), and which candidate is the source passage.
type List struct {
	ID      string
	Query   []float32
	Docs    []int32
	Teacher []float32
	Source  int // index into Docs of the source passage; -1 when absent
}

// Validate checks shapes: every vector has Dim entries, every list as many
// scores as candidates and rows inside the passage matrix.
func (d *Data) Validate() error {
	if d.Dim <= 0 || len(d.Passages)%d.Dim != 0 {
		return fmt.Errorf("adapter data: %d passage floats do not make rows of %d", len(d.Passages), d.Dim)
	}
	n := int32(len(d.Passages) / d.Dim)
	for _, l := range d.Lists {
		if len(l.Query) != d.Dim {
			return fmt.Errorf("adapter data: list %s: query of %d dimensions, want %d", l.ID, len(l.Query), d.Dim)
		}
		if len(l.Docs) != len(l.Teacher) || len(l.Docs) < 2 {
			return fmt.Errorf("adapter data: list %s: %d candidates and %d scores (want equal, at least 2)", l.ID, len(l.Docs), len(l.Teacher))
		}
		for _, r := range l.Docs {
			if r < 0 || r >= n {
				return fmt.Errorf("adapter data: list %s: passage row %d outside 0..%d", l.ID, r, n-1)
			}
		}
		if l.Source >= len(l.Docs) {
			return fmt.Errorf("adapter data: list %s: source %d of %d candidates", l.ID, l.Source, len(l.Docs))
		}
	}
	return nil
}

// Loss is the training objective of one list, with the paper's settings as
// defaults (DefaultLoss).
type Loss struct {
	TeacherTemp float64 // softmax temperature of the teacher scores (0.3)
	StudentTemp float64 // softmax temperature of the student cosines (0.05)
	// LearnTemp trains the student temperature too, from StudentTemp. A
	// temperature does not change any ranking, but a fixed one that does
	// not fit the embedder's spread of cosines makes the KL reward a
	// matrix that squeezes or stretches every cosine instead of one that
	// reorders the candidates.
	LearnTemp bool
	// InfoNCE is the weight of the contrastive term (0: off; the paper's
	// code uses 0.1): −log softmax(cos/InfoNCETemp) at the source passage
	// over the list, leaving out every other candidate whose teacher score
	// is above FalseNegRatio × the source's (a likely false negative).
	InfoNCE       float64
	InfoNCETemp   float64 // 0.01
	FalseNegRatio float64 // 0.6
}

// DefaultLoss is the paper's KL loss without the contrastive term.
func DefaultLoss() Loss {
	return Loss{TeacherTemp: 0.3, StudentTemp: 0.05, InfoNCETemp: 0.01, FalseNegRatio: 0.6}
}

// Name describes the loss for metadata, e.g. "kl(t/0.3||cos/0.05)+0.1*infonce(0.01,fn>0.6)".
func (l Loss) Name() string {
	s := fmt.Sprintf("kl(teacher/%g||cos/%g)", l.TeacherTemp, l.StudentTemp)
	if l.LearnTemp {
		s = fmt.Sprintf("kl(teacher/%g||cos/learned from %g)", l.TeacherTemp, l.StudentTemp)
	}
	if l.InfoNCE > 0 {
		s += fmt.Sprintf("+%g*infonce(cos/%g,mask>%g*source)", l.InfoNCE, l.InfoNCETemp, l.FalseNegRatio)
	}
	return s
}

// scratch holds one worker's buffers for listLoss.
type scratch struct {
	qp, z, a, g, cos, dc, t, s []float64
	dScale                     float64 // dLoss/dLogScale of the last list
}

func newScratch(dim, rank int) *scratch {
	return &scratch{qp: make([]float64, dim), z: make([]float64, rank), a: make([]float64, dim), g: make([]float64, dim)}
}

// softmax writes softmax(x/temp) into out (same length) and returns
// log Σ exp(x/temp), computed stably.
func softmax(x []float64, temp float64, out []float64) float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, v/temp)
	}
	var s float64
	for i, v := range x {
		out[i] = math.Exp(v/temp - mx)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return mx + math.Log(s)
}

// listLoss computes the loss of list l under model m, its cosines in
// sc.cos, and, with grad, dLoss/dq' in sc.g (q' = W·q, before
// normalisation) with Vᵀ·q in sc.z. Cost: one apply plus 2·k·d for k
// candidates.
func (m *Model) listLoss(d *Data, l *List, loss Loss, sc *scratch, grad bool) float64 {
	k := len(l.Docs)
	if cap(sc.cos) < k {
		sc.cos, sc.dc, sc.t, sc.s = make([]float64, k), make([]float64, k), make([]float64, k), make([]float64, k)
	}
	cos, dc, t, s := sc.cos[:k], sc.dc[:k], sc.t[:k], sc.s[:k]
	m.apply(l.Query, sc.qp, sc.z)
	var n2 float64
	for _, x := range sc.qp {
		n2 += x * x
	}
	n := math.Sqrt(n2)
	if n == 0 {
		n = 1e-12
	}
	dim := d.Dim
	for j, r := range l.Docs {
		p := d.Passages[int(r)*dim : int(r)*dim+dim]
		var dot float64
		for i, x := range p {
			dot += sc.qp[i] * float64(x)
		}
		cos[j] = dot / n
	}
	// KL(t ‖ s) = Σ t (log t − log s); dKL/dcos_j = (s_j − t_j)/τs.
	for j, v := range l.Teacher {
		t[j] = float64(v)
	}
	softmax(t, loss.TeacherTemp, t) // t now holds the teacher distribution
	temp := m.StudentTemp(loss)
	ls := softmax(cos, temp, s)
	var out float64
	sc.dScale = 0
	for j := range k {
		if t[j] > 0 {
			out += t[j] * (math.Log(t[j]) - (cos[j]/temp - ls))
		}
		dc[j] = (s[j] - t[j]) / temp
		sc.dScale += (s[j] - t[j]) * cos[j] / temp // logits are cos·e^LogScale
	}
	if loss.InfoNCE > 0 && l.Source >= 0 {
		out += loss.InfoNCE * m.infoNCE(l, loss, cos, dc, s)
	}
	if !grad {
		return out
	}
	// a = dL/du with u = q'/n; dL/dq' = (a − (a·u)u)/n.
	clear(sc.a)
	for j, r := range l.Docs {
		if dc[j] == 0 {
			continue
		}
		p := d.Passages[int(r)*dim : int(r)*dim+dim]
		for i, x := range p {
			sc.a[i] += dc[j] * float64(x)
		}
	}
	var au float64
	for i, x := range sc.a {
		au += x * sc.qp[i] / n
	}
	for i, x := range sc.a {
		sc.g[i] = (x - au*sc.qp[i]/n) / n
	}
	return out
}

// infoNCE adds the contrastive term's gradient (weighted) to dc and
// returns its unweighted loss; buf is scratch of len(cos).
func (m *Model) infoNCE(l *List, loss Loss, cos, dc, buf []float64) float64 {
	src := float64(l.Teacher[l.Source])
	mx := math.Inf(-1)
	keep := func(j int) bool { return j == l.Source || float64(l.Teacher[j]) <= loss.FalseNegRatio*src }
	for j := range cos {
		if keep(j) {
			mx = math.Max(mx, cos[j]/loss.InfoNCETemp)
		}
	}
	var z float64
	for j := range cos {
		buf[j] = 0
		if keep(j) {
			buf[j] = math.Exp(cos[j]/loss.InfoNCETemp - mx)
			z += buf[j]
		}
	}
	for j := range cos {
		p := buf[j] / z
		if j == l.Source {
			p--
		}
		dc[j] += loss.InfoNCE * p / loss.InfoNCETemp
	}
	return -(cos[l.Source]/loss.InfoNCETemp - mx - math.Log(z))
}
