package pipeline

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Refusals tells a misconfiguration from faults of items. While a role
// (the LLM, the teacher) has had no success, its item failures are held
// back instead of recorded; when the first Threshold held failures all
// carry the same answer (digits aside), the role is misconfigured: the run
// stops with that answer and nothing is recorded as failed. At the first
// success the held failures are recorded, and from then on every failure
// is recorded at once. Safe for concurrent use.
type Refusals struct {
	mu        sync.Mutex
	role      string
	threshold int
	ok        bool
	held      []func() error
	sig       string
	same      bool
	msg       string
}

// MisconfigError is the stop Refusals calls for.
type MisconfigError struct {
	Role string
	N    int
	Msg  string
	Hint string
}

func (e *MisconfigError) Error() string {
	return fmt.Sprintf("%s: the first %d items were all refused with the same answer and none succeeded, so this is a setting, not the items (nothing was recorded as failed): %s\n  hint: %s",
		e.Role, e.N, e.Msg, e.Hint)
}

var digits = regexp.MustCompile(`[0-9]+`)

// Refusals returns the role's watcher, made on first use.
func (e *Env) Refusals(role string) *Refusals {
	v, _ := e.refusals.LoadOrStore(role, &Refusals{role: role, threshold: 10, same: true})
	return v.(*Refusals)
}

// Succeeded records a success of the role and records the held failures.
func (r *Refusals) Succeeded() error {
	r.mu.Lock()
	if r.ok {
		r.mu.Unlock()
		return nil
	}
	r.ok = true
	r.mu.Unlock()
	return r.flush()
}

// Failed handles one item failure with the server's message; record writes
// the failure. It returns a *MisconfigError when the failure completes a
// systematic refusal, or record's error.
func (r *Refusals) Failed(msg, hint string, record func() error) error {
	r.mu.Lock()
	if r.ok {
		r.mu.Unlock()
		return record()
	}
	sig := digits.ReplaceAllString(strings.TrimSpace(msg), "#")
	if len(r.held) == 0 {
		r.sig, r.msg = sig, msg
	} else if sig != r.sig {
		r.same = false
	}
	r.held = append(r.held, record)
	n := len(r.held)
	if r.same && n >= r.threshold {
		r.mu.Unlock()
		return &MisconfigError{Role: r.role, N: n, Msg: r.msg, Hint: hint}
	}
	r.mu.Unlock()
	return nil
}

// Close ends the role's work (or a stage's part of it): the held failures,
// fewer than Threshold, are recorded (a run with fewer items than that
// cannot tell a setting from the items).
func (r *Refusals) Close() error { return r.flush() }

// flush records the held failures.
func (r *Refusals) flush() error {
	r.mu.Lock()
	held := r.held
	r.held = nil
	r.mu.Unlock()
	for _, rec := range held {
		if err := rec(); err != nil {
			return err
		}
	}
	return nil
}
