package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	// Ahead returns once in is closed and drained. AheadOf makes one from
	// a function that takes a channel of the items' own type.
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
	// Reads and Writes name the tables (key prefixes: PrefixDoc, …) that
	// Run derives its work from and those it writes, as go/analysis's
	// Requires: Run refuses a list of stages in which a stage reads a table
	// that a later stage writes (the order is wrong). Caches a stage merely
	// consults (fail/, a failure recorded by any stage) are not listed.
	Reads, Writes []string
}

// CheckOrder reports the first stage of stages that reads a table a later
// stage of the list writes.
func CheckOrder(stages []Stage) error {
	for i, st := range stages {
		for _, t := range st.Reads {
			for _, later := range stages[i+1:] {
				if slices.Contains(later.Writes, t) {
					return fmt.Errorf("pipeline: stage %s reads %s, which stage %s writes after it: wrong order", st.Name, t, later.Name)
				}
			}
		}
	}
	return nil
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
	// Force lets the export write into an OUT folder holding files synthq
	// did not write (--force): it replaces the names it writes and still
	// deletes none of the others.
	Force bool
	// Prepared, when set, is the read-only store of a prepared corpus
	// (synthq prepare): the corpus stage copies its passages and selection
	// instead of reading the corpus file, and dense mining reads its passage
	// vectors instead of embedding the corpus.
	Prepared *Store
	counters sync.Map // stage -> *Counters
	refusals sync.Map // role -> *Refusals

	mu   sync.RWMutex
	next map[string]*aheadIn // producing stage -> input of the next stage working ahead
	// quit is closed by Run when the run ends with an error: the stages
	// working ahead start nothing new (AheadStopped), so the items still
	// queued for them (up to aheadBuffer each) send no paid request.
	quit chan struct{}
}

// AheadStopped reports whether a stage working ahead should start no new
// item: the run was asked to stop (Stopping) or is ending with an error.
// Items in flight go on and are stored.
func (e *Env) AheadStopped() bool {
	if e.Stopping() {
		return true
	}
	e.mu.RLock()
	q := e.quit
	e.mu.RUnlock()
	if q == nil {
		return false
	}
	select {
	case <-q:
		return true
	default:
		return false
	}
}

// quitCh is the channel AheadOf watches (nil, never ready, outside Run).
func (e *Env) quitCh() <-chan struct{} {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.quit
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

// AllCounters returns a copy of every stage's counts, by stage name.
func (e *Env) AllCounters() map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	e.counters.Range(func(k, v any) bool {
		out[k.(string)] = v.(*Counters).Snapshot()
		return true
	})
	return out
}

// StageStats is what a stage leaves in the store under stat/<name>.
type StageStats struct {
	Counts map[string]int64 `json:"counts"`
	// Seconds is the stage's own time: its Run, and the wait for its
	// work ahead to finish after the stages before it had (time no other
	// stage's Seconds holds).
	Seconds float64 `json:"seconds"`
	// AheadSeconds is how long the stage worked ahead beside the stages
	// before it (overlap: their Seconds hold that time too); 0 when it did
	// not.
	AheadSeconds float64   `json:"ahead_seconds,omitempty"`
	Finished     time.Time `json:"finished"`
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
// error of an Ahead stops the run like the stage's own. When the run ends
// with an error, the stages working ahead start none of the items still
// queued for them (Env.AheadStopped): what is in flight finishes and is
// stored, at most a worker pool's worth of requests. With env.NoOverlap the
// stages run strictly in turn.
func Run(ctx context.Context, env *Env, stages []Stage) (runErr error) {
	if err := CheckOrder(stages); err != nil {
		return err
	}
	quit := make(chan struct{})
	env.mu.Lock()
	env.quit = quit
	env.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type ahead struct {
		in   *aheadIn
		done chan error
	}
	aheads := map[int]*ahead{}
	started := false
	var aheadFrom time.Time // when the stages working ahead started
	start := func() {
		started = true
		aheadFrom = time.Now()
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
		if runErr != nil {
			close(quit) // queued work-ahead items must not send paid requests now
		}
		for i := range stages {
			drain(i)
		}
	}()
	for i, st := range stages {
		if st.Announces && !started {
			start()
		}
		start0 := time.Now()
		var aheadSeconds float64
		if aheads[i] != nil {
			aheadSeconds = start0.Sub(aheadFrom).Seconds()
		}
		drain(i)
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		if ctx.Err() != nil {
			return ErrInterrupted
		}
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
		stats := StageStats{Counts: env.Counters(st.Name).Snapshot(), Seconds: time.Since(start0).Seconds(), AheadSeconds: aheadSeconds, Finished: time.Now().UTC()}
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

// SortedKeys returns a map's keys in order (for stable printing).
func SortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// AheadOf adapts an Ahead that takes the items of one type T (what the
// stages before it announce) to Stage.Ahead: it hands ahead a channel of T,
// in the order announced, closed when in is; once the run ends with an
// error or ctx is done, the items left in in are drained, not passed on.
// An item of another type is a
// mistake in the flow's wiring: it is not passed on, and the run stops
// with an error naming its type. Cost: one goroutine, one channel hand-off
// per item.
func AheadOf[T any](ahead func(ctx context.Context, env *Env, in <-chan T) error) func(ctx context.Context, env *Env, in <-chan any) error {
	return func(ctx context.Context, env *Env, in <-chan any) error {
		typed := make(chan T)
		done := make(chan error, 1)
		go func() { done <- ahead(ctx, env, typed) }()
		quit := env.quitCh()
		var wrong error
		stopped := false
		for it := range in {
			v, ok := it.(T)
			if !ok {
				if wrong == nil {
					wrong = fmt.Errorf("pipeline: an item of type %T announced to a stage that takes %T", it, v)
				}
				continue
			}
			if wrong != nil || stopped {
				continue // drained, not passed on
			}
			select {
			case typed <- v:
			case err := <-done:
				return err // ahead stopped early; announcing never blocks on in
			case <-quit:
				stopped = true // the run is ending with an error
			case <-ctx.Done():
				stopped = true
			}
		}
		close(typed)
		err := <-done
		if wrong != nil {
			return wrong
		}
		return err
	}
}
