package pipeline

import (
	"fmt"
	"io"
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
}

// NewProgress writes to w; tty selects the redrawn bar.
func NewProgress(w io.Writer, tty, quiet bool) *Progress {
	return &Progress{w: w, tty: tty, quiet: quiet, interval: 5 * time.Second}
}

// Bar tracks one stage.
type Bar struct {
	p     *Progress
	name  string
	total int64
	done  atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	ended atomic.Bool
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
	fmt.Fprintf(p.w, format, args...)
}

// Start begins a bar for a stage with total units (0: unknown).
func (p *Progress) Start(name string, total int64) *Bar {
	b := &Bar{p: p, name: name, total: total, start: time.Now(), stop: make(chan struct{})}
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

func (b *Bar) render(final bool) {
	done := b.done.Load()
	el := time.Since(b.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(done) / el
	}
	line := fmt.Sprintf("%-9s %d", b.name, done)
	if b.total > 0 {
		line = fmt.Sprintf("%-9s %d/%d %5.1f%%", b.name, done, b.total, 100*float64(done)/float64(b.total))
	}
	line += fmt.Sprintf("  %.0f/s", rate)
	if !final && b.total > 0 && rate > 0 && done < b.total {
		line += fmt.Sprintf("  ETA %s", (time.Duration(float64(b.total-done)/rate) * time.Second).Round(time.Second))
	}
	if final {
		line += fmt.Sprintf("  in %s", time.Since(b.start).Round(time.Millisecond))
	} else if b.p.Status != nil {
		if s := b.p.Status(); s != "" {
			line += "  | " + s
		}
	}
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
