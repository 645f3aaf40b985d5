package httpx

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuNow is the process's user and system CPU time so far, in ns.
func cpuNow() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkSchedContended is the scheduler's own CPU per request when many
// callers wait for few permits, as a stage's worker pool (sized to
// Capacity, up to 512) waits on a 32-slot teacher: one acquire and one
// release per op, each permit held 1 ms (the request in flight), 512
// goroutines, a pinned limit of 32. cpu-ns/op is the
// process's CPU time per op (less sensitive than ns/op to a loaded machine).
//
//	go test ./internal/httpx -run XXX -bench SchedContended -benchtime 20000x -count 3
func BenchmarkSchedContended(b *testing.B) {
	s := newSched(&Options{Endpoints: []string{"http://t/v1"}, Concurrency: 32, RestAfter: 3, MaxOutage: 1 << 62})
	ctx := context.Background()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuNow()
	for g := 0; g < 512; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				_, tk, err := s.acquire(ctx, "http://t/v1/rerank")
				if err != nil {
					b.Error(err)
					return
				}
				time.Sleep(time.Millisecond) // the request in flight
				s.release(tk, outcome{kind: outOK})
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N), "cpu-ns/op")
}
