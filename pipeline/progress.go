package pipeline

import (
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Progress reports per-stage progress: on a terminal a redrawn bar (done/
// total, rate, ETA); elsewhere a log line every few seconds. A nil *Progress
// or one made with quiet reports nothing.
type Progress struct {
	// Status, when set, is appended to each progress line (per-endpoint
	// figures: in flight, rate, refusals, waiting).
	Status   func() string
	w        io.Writer
	tty      bool
	quiet    bool
	interval time.Duration
	bars     sync.Map // stage name -> *Bar (the latest of that name)
	now      func() time.Time
	wmu      sync.Mutex // one line at a time: stages run side by side (mine ahead builds BM25 and dense at once)
}

// NewProgress writes to w; tty selects the redrawn bar.
func NewProgress(w io.Writer, tty, quiet bool) *Progress {
	return &Progress{w: w, tty: tty, quiet: quiet, interval: 5 * time.Second, now: time.Now}
}

func (p *Progress) clock() time.Time {
	if p == nil || p.now == nil {
		return time.Now()
	}
	return p.now()
}

// Bar tracks one stage.
type Bar struct {
	p     *Progress
	name  string
	total int64
	done  atomic.Int64
	found atomic.Int64 // of done, found done already (AddFound)
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	ended atomic.Bool

	mu      sync.Mutex
	samples []barSample // (time, done) at each estimate, the recent ones
}

type barSample struct {
	t    time.Time
	done int64
}

// BarState is one stage's progress as Progress.Bars reports it.
type BarState struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total,omitempty"` // 0: unknown
	Ended bool  `json:"ended,omitempty"`
}

// Bars returns the progress of every bar started so far, by stage name,
// quiet or not (for the progress file a run writes beside its store).
func (p *Progress) Bars() map[string]BarState {
	out := map[string]BarState{}
	if p == nil {
		return out
	}
	p.bars.Range(func(k, v any) bool {
		b := v.(*Bar)
		out[k.(string)] = BarState{Done: b.done.Load(), Total: b.total, Ended: b.ended.Load()}
		return true
	})
	return out
}

// Warnf writes a warning line (shown even with --quiet; nothing on a nil
// Progress).
func (p *Progress) Warnf(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// Start begins a bar for a stage with total units (0: unknown).
func (p *Progress) Start(name string, total int64) *Bar {
	now := p.clock()
	b := &Bar{p: p, name: name, total: total, start: now, stop: make(chan struct{}), samples: []barSample{{now, 0}}}
	if p != nil {
		p.bars.Store(name, b)
	}
	if p == nil || p.quiet {
		return b
	}
	every := p.interval
	if p.tty {
		every = 200 * time.Millisecond
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.render(false)
			}
		}
	}()
	return b
}

// Add records n more units done.
func (b *Bar) Add(n int64) { b.done.Add(n) }

// AddFound records n more units done that were found done already (by
// work ahead or an earlier run) at no cost: they count as done, never in
// the rate the ETA divides the remaining units by.
func (b *Bar) AddFound(n int64) {
	b.found.Add(n)
	b.done.Add(n)
}

// Done is the units done so far.
func (b *Bar) Done() int64 { return b.done.Load() }

// Finish stops the bar and prints its final line; later calls do nothing.
func (b *Bar) Finish() {
	b.ended.Store(true)
	if b.p == nil || b.p.quiet {
		return
	}
	b.once.Do(func() {
		close(b.stop)
		b.wg.Wait()
		b.render(true)
	})
}

// estimate returns the rate shown (units a second over the recent past)
// and the time left (ok false when it cannot be told), noting (now, done)
// as a sample. The recent past is the last quarter of the time elapsed
// (five samples at least). A
// stage's rate drifts (label slows as the store it reads grows, generate
// speeds up as the endpoints warm): the rates over the window's thirds give
// the drift per unit done, and the time left is the
// remaining units at that drifting rate (kept between half and twice the
// recent rate, as a drift seldom goes on unchanged for long). A drift is
// counted only when the window's three thirds agree on it, so a one-off
// spurt (a run of stored items) does not pass for a trend.
func (b *Bar) estimate(now time.Time, all int64) (rate float64, left time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	found := b.found.Load()
	done := all - found // units this run did: the rate is theirs
	b.samples = append(b.samples, barSample{now, done})
	cut := now.Add(-now.Sub(b.start) / 4)
	i := 0
	for i+1 < len(b.samples)-4 && !b.samples[i+1].t.After(cut) { // keep 5 samples at least
		i++
	}
	b.samples = b.samples[i:]
	// A window that opens on time with nothing done by this run (the
	// units found done at the start took it) begins when work began.
	for len(b.samples) > 2 && b.samples[1].done == b.samples[0].done {
		b.samples = b.samples[1:]
	}
	first := b.samples[0]
	if dt := now.Sub(first.t).Seconds(); dt > 0 {
		rate = float64(done-first.done) / dt
	}
	if b.total <= 0 || rate <= 0 || all >= b.total {
		return rate, 0, false
	}
	var slope float64 // units/s per unit done
	if n := len(b.samples); n >= 4 {
		// The window in thirds: a drift counts when both steps agree in
		// sign, at the smaller of the two, so a one-off spurt is no trend.
		p0, p1, p2, p3 := first, b.samples[n/3], b.samples[2*n/3], b.samples[n-1]
		r := func(a, b barSample) (float64, float64, bool) {
			d, t := float64(b.done-a.done), b.t.Sub(a.t).Seconds()
			return d / t, float64(a.done+b.done) / 2, d > 0 && t > 0
		}
		r1, x1, ok1 := r(p0, p1)
		r2, x2, ok2 := r(p1, p2)
		r3, x3, ok3 := r(p2, p3)
		if ok1 && ok2 && ok3 && x2 > x1 && x3 > x2 {
			s1, s2 := (r2-r1)/(x2-x1), (r3-r2)/(x3-x2)
			if s1*s2 > 0 {
				slope = s1
				if math.Abs(s2) < math.Abs(s1) {
					slope = s2
				}
			}
		}
	}
	remaining := float64(b.total - all)
	const steps = 64
	secs := 0.0
	for k := range steps {
		x := remaining * (float64(k) + 0.5) / steps
		r := min(max(rate+slope*x, rate/2), 2*rate)
		secs += remaining / steps / r
	}
	return rate, time.Duration(secs * float64(time.Second)), true
}

func (b *Bar) render(final bool) {
	done := b.done.Load()
	now := b.p.clock()
	el := now.Sub(b.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(done) / el
	}
	recent, left, ok := b.estimate(now, done)
	if !final {
		rate = recent
	}
	line := fmt.Sprintf("%-9s %d", b.name, done)
	if b.total > 0 {
		line = fmt.Sprintf("%-9s %d/%d %5.1f%%", b.name, done, b.total, 100*float64(done)/float64(b.total))
	}
	line += fmt.Sprintf("  %.0f/s", rate)
	if !final && ok {
		line += fmt.Sprintf("  ETA %s", left.Round(time.Second))
	}
	if final {
		line += fmt.Sprintf("  in %s", now.Sub(b.start).Round(time.Millisecond))
	} else if b.p.Status != nil {
		if s := b.p.Status(); s != "" {
			line += "  | " + s
		}
	}
	b.p.wmu.Lock()
	defer b.p.wmu.Unlock()
	if b.p.tty {
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(b.p.w, "\r\033[K%s%s", line, end)
		return
	}
	fmt.Fprintln(b.p.w, line)
}
