package batch

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/synthq/synthq/internal/httpx"
)

// server is a fake that refuses batches over max as TEI does (422 "batch
// size N > maximum allowed batch size M") and every batch holding a bad
// input for its content (an Item fault), and records the batches sent.
type server struct {
	max   int
	bad   map[int]bool
	sent  [][2]int
	fatal int // index whose batch fails with a Config fault; -1: none
}

func (s *server) send(lo, hi int) error {
	s.sent = append(s.sent, [2]int{lo, hi})
	if hi-lo > s.max {
		return &httpx.Fault{Kind: httpx.Item, Status: 422, Msg: fmt.Sprintf("batch size %d > maximum allowed batch size %d", hi-lo, s.max)}
	}
	for i := lo; i < hi; i++ {
		if i == s.fatal {
			return &httpx.Fault{Kind: httpx.Config, Status: 401, Msg: "bad key"}
		}
		if s.bad[i] {
			return &httpx.Fault{Kind: httpx.Item, Status: 413, Msg: fmt.Sprintf("input %d is too long", i)}
		}
	}
	return nil
}

// answers reports whether the server serves [lo, hi) whole.
func (s *server) answers(lo, hi int) bool {
	if hi-lo > s.max {
		return false
	}
	for i := lo; i < hi; i++ {
		if s.bad[i] || i == s.fatal {
			return false
		}
	}
	return true
}

func TestRun(t *testing.T) {
	cases := []struct {
		name      string
		n, size   int
		max       int
		bad       []int
		again     map[int]bool // inputs that pass when alone tries again
		fatal     int
		wantSize  int
		wantRefus []int
		wantErr   bool
		wantSent  int
	}{
		{name: "all served", n: 10, size: 4, max: 8, fatal: -1, wantSize: 4, wantSent: 3},
		{name: "too large halves and keeps the size", n: 16, size: 16, max: 4, fatal: -1, wantSize: 4, wantSent: 2 + 4},
		{name: "one bad input isolated", n: 8, size: 8, max: 8, bad: []int{5}, fatal: -1, wantSize: 8, wantRefus: []int{5},
			wantSent: 1 + 2 + 2 + 2}, // [0,8) [0,4) [4,8) [4,6) [6,8) [4,5) [5,6)
		{name: "a refused input served when tried again", n: 4, size: 4, max: 4, bad: []int{2}, again: map[int]bool{2: true}, fatal: -1, wantSize: 4,
			wantSent: 1 + 2 + 2},
		{name: "config fault stops", n: 8, size: 4, max: 8, fatal: 6, wantSize: 4, wantErr: true, wantSent: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &server{max: tc.max, bad: map[int]bool{}, fatal: tc.fatal}
			for _, i := range tc.bad {
				s.bad[i] = true
			}
			size := NewSize(tc.size)
			refused, err := Run(tc.n, size, s.send, func(i int, msg string) (string, error) {
				if tc.again[i] {
					return "", nil
				}
				return msg, nil
			})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			var f *httpx.Fault
			if tc.wantErr && (!errors.As(err, &f) || f.Kind != httpx.Config) {
				t.Fatalf("err = %v, want the Config fault", err)
			}
			if got := size.Load(); got != tc.wantSize {
				t.Errorf("size %d, want %d", got, tc.wantSize)
			}
			if got := slices.Sorted(maps.Keys(refused)); !slices.Equal(got, tc.wantRefus) {
				t.Errorf("refused %v, want %v", got, tc.wantRefus)
			}
			if len(s.sent) != tc.wantSent {
				t.Errorf("sent %d batches %v, want %d", len(s.sent), s.sent, tc.wantSent)
			}
			// Every input is covered by a batch that was served or isolated.
			for i := 0; i < tc.n && !tc.wantErr; i++ {
				ok := false
				for _, b := range s.sent {
					if b[0] <= i && i < b[1] && s.answers(b[0], b[1]) || b == [2]int{i, i + 1} {
						ok = true
					}
				}
				if !ok {
					t.Errorf("input %d never sent in a batch that was answered or alone", i)
				}
			}
		})
	}
}

func TestAgain(t *testing.T) {
	tooLong := func(n int) error {
		return &httpx.Fault{Kind: httpx.Item, Status: 400, Msg: fmt.Sprintf("input (%d tokens) is too long for the context window", n)}
	}
	cases := []struct {
		name     string
		msg      string
		answers  []error // what each resend gets
		canCut   bool
		want     string
		wantErr  bool
		wantSent int
	}{
		{name: "not too long: not resent", msg: "bad input", canCut: true, want: "bad input"},
		{name: "served after one cut", msg: tooLong(600).(*httpx.Fault).Msg, answers: []error{nil}, canCut: true, want: "", wantSent: 1},
		{name: "still refused", msg: tooLong(600).(*httpx.Fault).Msg, answers: []error{tooLong(520), tooLong(513), tooLong(512)}, canCut: true,
			want: "still refused after 3 cut(s)", wantSent: 3},
		{name: "cannot cut", msg: tooLong(600).(*httpx.Fault).Msg, canCut: false, want: "too long"},
		{name: "other fault stops", msg: tooLong(600).(*httpx.Fault).Msg, answers: []error{&httpx.Fault{Kind: httpx.Endpoint, Msg: "down"}}, canCut: true,
			wantErr: true, wantSent: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sent := 0
			got, err := Again(tc.msg, func(string) (bool, error) { return tc.canCut, nil }, func() error {
				sent++
				if sent > len(tc.answers) {
					return tooLong(999)
				}
				return tc.answers[sent-1]
			})
			if (err != nil) != tc.wantErr || !strings.Contains(got, tc.want) || tc.want == "" && got != "" || sent != tc.wantSent {
				t.Errorf("Again: %q, %v after %d sends; want %q (error %v) after %d", got, err, sent, tc.want, tc.wantErr, tc.wantSent)
			}
		})
	}
}
