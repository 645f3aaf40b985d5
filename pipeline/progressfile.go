package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ProgressFileName is the file a run keeps up to date inside its store's
// folder, for `synthq stats --merge` to read while the run holds the store:
// reading it takes no lock and opens no database.
const ProgressFileName = "progress.json"

// Run states in a progress file.
const (
	StateRunning     = "running"
	StateDone        = "done"
	StateInterrupted = "interrupted"
	StateFailed      = "failed"
)

// RunProgress is a run's progress file: who runs, in which state, each
// stage's progress and live counts. Written whole every few seconds by an
// atomic rename, so a reader sees one complete version; a run killed
// outright leaves StateRunning with an Updated that stops moving.
type RunProgress struct {
	Shard   string                      `json:"shard,omitempty"`
	State   string                      `json:"state"`
	Error   string                      `json:"error,omitempty"`
	Host    string                      `json:"host,omitempty"`
	PID     int                         `json:"pid,omitempty"`
	Started time.Time                   `json:"started"`
	Updated time.Time                   `json:"updated"`
	Stages  map[string]BarState         `json:"stages"`
	Counts  map[string]map[string]int64 `json:"counts"`
}

// WriteProgressFile writes p into the store folder dir atomically (a
// temporary file in dir, then a rename).
func WriteProgressFile(dir string, p RunProgress) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+ProgressFileName+".*")
	if err != nil {
		return fmt.Errorf("write progress: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), filepath.Join(dir, ProgressFileName))
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write progress: %w", werr)
	}
	return nil
}

// ReadProgressFile reads the progress file of the store folder dir.
func ReadProgressFile(dir string) (RunProgress, error) {
	var p RunProgress
	b, err := os.ReadFile(filepath.Join(dir, ProgressFileName))
	if err != nil {
		return p, fmt.Errorf("read progress of %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("read progress of %s: %s: %w", dir, ProgressFileName, err)
	}
	return p, nil
}
