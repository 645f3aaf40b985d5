package main

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/synthq/synthq/pipeline"
)

// progressEvery is how often a run rewrites its progress file.
const progressEvery = 2 * time.Second

// progressWriter keeps STORE/progress.json up to date while a run works, for
// `synthq stats --merge` to read without the store's lock.
type progressWriter struct {
	env   *pipeline.Env
	dir   string
	rec   pipeline.RunProgress
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	write func(pipeline.RunProgress) error
}

// startProgress writes the first progress file at once, then every
// progressEvery until end.
func startProgress(env *pipeline.Env) *progressWriter {
	host, _ := os.Hostname()
	pw := &progressWriter{env: env, dir: env.Store.Path(), stop: make(chan struct{}),
		rec: pipeline.RunProgress{Shard: env.Config.Shard, State: pipeline.StateRunning, Host: host, PID: os.Getpid(), Started: time.Now().UTC()}}
	pw.write = func(p pipeline.RunProgress) error { return pipeline.WriteProgressFile(pw.dir, p) }
	pw.flush("", "")
	pw.wg.Add(1)
	go func() {
		defer pw.wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-pw.stop:
				return
			case <-t.C:
				pw.flush("", "")
			}
		}
	}()
	return pw
}

// flush writes the current state; a failed write is not the run's failure
// (the progress file is a view, the store is the record).
func (pw *progressWriter) flush(state, msg string) {
	p := pw.rec
	if state != "" {
		p.State, p.Error = state, msg
	}
	p.Updated = time.Now().UTC()
	p.Stages = pw.env.Progress.Bars()
	p.Counts = pw.env.AllCounters()
	pw.write(p)
}

// end stops the writer and writes the run's final state from its error.
func (pw *progressWriter) end(err error) {
	pw.once.Do(func() {
		close(pw.stop)
		pw.wg.Wait()
		var fe failedItemsError
		switch {
		case err == nil || errors.As(err, &fe):
			pw.flush(pipeline.StateDone, "")
		case errors.Is(err, pipeline.ErrInterrupted) || pw.env.Stopping():
			// A signal stopped the run (some paths report the stop as the
			// request it cut short).
			pw.flush(pipeline.StateInterrupted, err.Error())
		default:
			pw.flush(pipeline.StateFailed, err.Error())
		}
	})
}
