package pipeline

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestStageErrorStopsWorkAhead: when a stage fails, the items it already
// announced to a stage working ahead (queued up to aheadBuffer) send no
// further request: at most the one in flight and the one handed over
// finish. The consumer here ignores AheadStopped, as a careless Ahead
// would; AheadOf alone must hold the bound. A second consumer that checks
// AheadStopped, as label and mine do, starts nothing after the error.
func TestStageErrorStopsWorkAhead(t *testing.T) {
	for _, careful := range []bool{false, true} {
		var requests, atError atomic.Int64
		first := make(chan struct{})
		var once atomic.Bool
		failed := errors.New("llm server misconfigured")
		producer := Stage{Name: "generate", Announces: true, Run: func(ctx context.Context, env *Env) error {
			for i := 0; i < 2000; i++ {
				env.Announce("generate", i)
			}
			<-first
			atError.Store(requests.Load())
			return failed
		}}
		consumer := Stage{Name: "label", Run: func(context.Context, *Env) error { return nil },
			Ahead: AheadOf(func(ctx context.Context, env *Env, in <-chan int) error {
				for range in {
					if careful && env.AheadStopped() {
						continue
					}
					requests.Add(1) // a paid request
					if once.CompareAndSwap(false, true) {
						close(first)
					}
					time.Sleep(time.Millisecond)
				}
				return nil
			})}
		err := Run(context.Background(), &Env{}, []Stage{producer, consumer})
		if !errors.Is(err, failed) {
			t.Fatalf("careful=%v: Run: %v, want the stage's error", careful, err)
		}
		if extra := requests.Load() - atError.Load(); extra > 2 {
			t.Errorf("careful=%v: %d requests after the stage error (%d in all of 2,000 queued), want at most 2", careful, extra, requests.Load())
		}
	}
}

// A stage's Seconds hold its own time, including the wait for its work
// ahead to finish once the stages before it are done; the time it worked
// beside them is its AheadSeconds, apart.
func TestStageTimeAttributesAheadWork(t *testing.T) {
	st, err := OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const producerRun, aheadTail = 150 * time.Millisecond, 250 * time.Millisecond
	producer := Stage{Name: "generate", Announces: true, Run: func(ctx context.Context, env *Env) error {
		env.Announce("generate", 1)
		time.Sleep(producerRun)
		return nil
	}}
	consumer := Stage{Name: "mine", Run: func(context.Context, *Env) error { return nil },
		Ahead: AheadOf(func(ctx context.Context, env *Env, in <-chan int) error {
			for range in {
			}
			time.Sleep(aheadTail) // after its input closed: e.g. an index build still going when generate ends
			return nil
		})}
	if err := Run(context.Background(), &Env{Store: st}, []Stage{producer, consumer}); err != nil {
		t.Fatal(err)
	}
	var gen, mine StageStats
	if _, err := st.GetJSON(PrefixStat+"generate", &gen); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetJSON(PrefixStat+"mine", &mine); err != nil {
		t.Fatal(err)
	}
	if gen.Seconds < producerRun.Seconds() || gen.AheadSeconds != 0 {
		t.Errorf("generate: %.3fs, %.3fs ahead; want >= %.3fs and none ahead", gen.Seconds, gen.AheadSeconds, producerRun.Seconds())
	}
	if mine.Seconds < aheadTail.Seconds() {
		t.Errorf("mine: %.3fs, want the ahead's tail after generate ended (>= %.3fs) in its own time", mine.Seconds, aheadTail.Seconds())
	}
	if mine.AheadSeconds < producerRun.Seconds() {
		t.Errorf("mine worked ahead %.3fs, want >= generate's %.3fs", mine.AheadSeconds, producerRun.Seconds())
	}
}
