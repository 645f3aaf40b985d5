package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Stage is one unit of the flow, in the manner of go/analysis: a plain struct
// the driver runs in order. Run reads what it needs from env.Store and writes
// its results there; stages never hand each other in-memory data.
type Stage struct {
	Name string
	Doc  string
	Run  func(ctx context.Context, env *Env) error
	// Ahead, when set, does the stage's paid work early, beside the stages
	// before it, so that every fleet is busy at once: it receives the items
	// those stages announce (Env.Announce) as they are stored, and may
	// announce its own to the next stage that works ahead. It only fills the
	// caches that Run reads (hit lists, vectors, teacher scores, failure
	// records), never the tables Run derives, so Run, which still runs in
	// turn over the whole store, computes exactly what it would have without
	// Ahead: overlap changes when work happens, never what is computed.
	// Ahead returns once in is closed and drained.
	Ahead func(ctx context.Context, env *Env, in <-chan any) error
	// Announces says that Run announces its items (Env.Announce): the
	// stages working ahead start just before the first such stage, when
	// everything before it (the corpus) is stored.
	Announces bool
	// PaidCounter names the counter that is non-zero when a run of the
	// stage sent requests someone pays for (generate: "requests"). The
	// figures of the last such run are kept in StageStats.Paid, so that a
	// cached re-run, which sends none, does not hide what the real run took.
	PaidCounter string
}

// aheadBuffer is how many announced items wait for a stage working ahead;
// past it, items are not offered (Run does them later), so a slow fleet
// never holds up a fast one and memory stays bounded.
const aheadBuffer = 8192

// Env is what a stage gets: the store, the settings, progress and counters.
type Env struct {
	Store    *Store
	Config   *Config
	Progress *Progress
	// Stop, when set, ends when the run should take no new work (the first
	// SIGINT); requests in flight go on under the stage's context.
	Stop context.Context
	// NoOverlap runs the stages strictly in turn (Ahead is not used).
	NoOverlap bool
	// Prepared, when set, is the read-only store of a prepared corpus
	// (synthq prepare): the corpus stage copies its passages and selection
	// instead of reading the corpus file, and dense mining reads its passage
	// vectors instead of embedding the corpus.
	Prepared *Store
	counters sync.Map // stage -> *Counters
	refusals sync.Map // role -> *Refusals

	mu   sync.RWMutex
	next map[string]*aheadIn // producing stage -> input of the next stage working ahead
}

type aheadIn struct {
	ch      chan any
	closed  bool
	dropped atomic.Int64
}

// Announce offers item, an output of stage just stored, to the next stage
// working ahead. It never blocks: when that stage's queue is full, or no
// stage works ahead, the item is left for the later stages' Run.
func (e *Env) Announce(stage string, item any) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	in := e.next[stage]
	if in == nil || in.closed {
		return
	}
	select {
	case in.ch <- item:
	default:
		in.dropped.Add(1)
	}
}

// Announcing reports whether a stage working ahead listens to stage's items
// (so a producer can skip building them).
func (e *Env) Announcing(stage string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	in := e.next[stage]
	return in != nil && !in.closed
}

// Counters are a stage's counts by name (items done, drops by reason, tokens).
// Safe for concurrent use.
type Counters struct {
	mu sync.Mutex
	m  map[string]int64
}

// Add adds n to the named count.
func (c *Counters) Add(name string, n int64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[name] += n
	c.mu.Unlock()
}

// Snapshot returns a copy of the counts.
func (c *Counters) Snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// Counters returns the counters of a stage, created on first use.
func (e *Env) Counters(stage string) *Counters {
	v, _ := e.counters.LoadOrStore(stage, &Counters{})
	return v.(*Counters)
}

// StageStats is what a stage leaves in the store under stat/<name>.
type StageStats struct {
	Counts   map[string]int64 `json:"counts"`
	Seconds  float64          `json:"seconds"`
	Finished time.Time        `json:"finished"`
	// Paid is the last run of the stage that sent requests (see
	// Stage.PaidCounter): this run's figures when it did, an earlier run's
	// when this one found everything stored; nil when none did.
	Paid *StageStats `json:"paid,omitempty"`
}

// ErrInterrupted is returned by Run when the context was cancelled (SIGINT).
var ErrInterrupted = errors.New("interrupted; re-run the same command to resume")

// Run runs stages in order. After each stage its counters are stored under
// stat/<name>. A cancelled context stops the run with ErrInterrupted once the
// in-flight work has been stored.
//
// Every stage with Ahead starts working ahead just before the first stage
// that Announces runs, fed by the items the stages before it announce. Before a
// stage's own Run, its Ahead's input is closed (every stage before it has
// finished) and the Ahead drained, so Run finds the early work stored. An
// error of an Ahead stops the run like the stage's own. With
// env.NoOverlap the stages run strictly in turn.
func Run(ctx context.Context, env *Env, stages []Stage) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type ahead struct {
		in   *aheadIn
		done chan error
	}
	aheads := map[int]*ahead{}
	started := false
	start := func() {
		started = true
		if env.NoOverlap {
			return
		}
		env.mu.Lock()
		env.next = map[string]*aheadIn{}
		var prev []string // stages whose items go to the next Ahead
		for i, st := range stages {
			if st.Ahead != nil {
				a := &ahead{in: &aheadIn{ch: make(chan any, aheadBuffer)}, done: make(chan error, 1)}
				aheads[i] = a
				for _, p := range prev {
					env.next[p] = a.in
				}
				prev = nil
			}
			prev = append(prev, st.Name)
		}
		env.mu.Unlock()
		for i, a := range aheads {
			st := stages[i]
			go func() {
				err := st.Ahead(ctx, env, a.in.ch)
				if err != nil && !errors.Is(err, ErrInterrupted) && ctx.Err() == nil {
					cancel(fmt.Errorf("%s: %w", st.Name, err))
				}
				a.done <- err
			}()
		}
	}
	// drain closes stage i's Ahead input and waits for it.
	drain := func(i int) {
		a := aheads[i]
		if a == nil {
			return
		}
		env.mu.Lock()
		a.in.closed = true
		close(a.in.ch)
		env.mu.Unlock()
		<-a.done
		if n := a.in.dropped.Load(); n > 0 {
			env.Counters(stages[i].Name).Add("ahead_not_offered", n)
		}
		delete(aheads, i)
	}
	defer func() {
		for i := range stages {
			drain(i)
		}
	}()
	for i, st := range stages {
		if st.Announces && !started {
			start()
		}
		drain(i)
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		if ctx.Err() != nil {
			return ErrInterrupted
		}
		start0 := time.Now()
		err := st.Run(ctx, env)
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause // an Ahead failed, and cancelled this stage
		}
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) || errors.Is(err, ErrInterrupted) {
				return ErrInterrupted
			}
			return fmt.Errorf("%s: %w", st.Name, err)
		}
		if ctx.Err() != nil || env.Stopping() {
			return ErrInterrupted // the stage may have left work undone
		}
		stats := StageStats{Counts: env.Counters(st.Name).Snapshot(), Seconds: time.Since(start0).Seconds(), Finished: time.Now().UTC()}
		if st.PaidCounter != "" {
			if stats.Counts[st.PaidCounter] > 0 {
				paid := stats
				stats.Paid = &paid
			} else {
				var prev StageStats
				if _, err := env.Store.GetJSON(PrefixStat+st.Name, &prev); err != nil {
					return fmt.Errorf("%s: %w", st.Name, err)
				}
				stats.Paid = prev.Paid
			}
		}
		if err := env.Store.PutJSON(PrefixStat+st.Name, stats); err != nil {
			return fmt.Errorf("%s: %w", st.Name, err)
		}
	}
	return nil
}

// LoadStats returns every stage's stored stats, by stage name.
func LoadStats(s *Store) (map[string]StageStats, error) {
	out := map[string]StageStats{}
	err := s.Scan(PrefixStat, func(k string, v []byte) error {
		var st StageStats
		if err := json.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("stats %s: %w", k, err)
		}
		out[k] = st
		return nil
	})
	return out, err
}

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
}

// Start begins a bar for a stage with total units (0: unknown).
func (p *Progress) Start(name string, total int64) *Bar {
	b := &Bar{p: p, name: name, total: total, start: time.Now(), stop: make(chan struct{})}
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

// Finish stops the bar and prints its final line.
func (b *Bar) Finish() {
	if b.p == nil || b.p.quiet {
		return
	}
	close(b.stop)
	b.wg.Wait()
	b.render(true)
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

// SortedKeys returns a map's keys in order (for stable printing).
func SortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
