package teacher

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/synthq/synthq/internal/fakes"
)

func passages(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("passage %d about %s", i, []string{"sync errors", "passwords", "storage quota"}[i%3])
	}
	return out
}

// Every API maps scores back by index: the fakes answer sorted by score, not
// in input order.
func TestScorersMapByIndex(t *testing.T) {
	for _, api := range APIs {
		t.Run(api, func(t *testing.T) {
			f := fakes.NewReranker(api, "m")
			defer f.Close()
			s, err := New(Config{API: api, URL: f.URL, Model: "m", Batch: 8})
			if err != nil {
				t.Fatal(err)
			}
			ps := passages(20)
			got, err := s.Score(context.Background(), "storage quota", ps)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range ps {
				if want := float32(fakes.Score("storage quota", p)); got[i] != want {
					t.Errorf("passage %d: score %v, want %v", i, got[i], want)
				}
			}
			if f.Counter.Total() != 3 {
				t.Errorf("%d requests for 20 passages in batches of 8, want 3", f.Counter.Total())
			}
		})
	}
}

func TestTEIBatchRefusalShrinksBatches(t *testing.T) {
	f := fakes.NewReranker("tei", "m")
	defer f.Close()
	f.MaxClientBatch = 5
	s, _ := New(Config{API: "tei", URL: f.URL, Batch: 32})
	got, err := s.Score(context.Background(), "sync errors", passages(23))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 23 {
		t.Fatalf("%d scores", len(got))
	}
	before := f.Counter.Total()
	if _, err := s.Score(context.Background(), "passwords", passages(10)); err != nil {
		t.Fatal(err)
	}
	// 23 refused, then 11 refused, then 5 accepted: the client keeps 5.
	if n := f.Counter.Total() - before; n != 2 {
		t.Errorf("after learning the limit, 10 passages took %d requests, want 2 (batches of 5)", n)
	}
}

func TestBadAnswersAreErrors(t *testing.T) {
	cases := map[string]string{
		`[{"index":0,"score":1.0},{"index":0,"score":0.5}]`: "index 0 appears twice",
		`[{"index":0,"score":1.0}]`:                         "no score for index 1",
		`[{"index":5,"score":1.0},{"index":0,"score":0.5}]`: "index 5 out of range",
		`{"error":"x"}`: "want [{\"index\",\"score\"}]",
	}
	for body, want := range cases {
		var n int
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n++
			io.WriteString(w, body)
		}))
		s, _ := New(Config{API: "tei", URL: srv.URL})
		_, err := s.Score(context.Background(), "q", []string{"a", "b"})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("answer %s: err = %v, want %q", body, err, want)
		}
		if n != 3 {
			t.Errorf("answer %s: %d attempts, want 3", body, n)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"Unauthorized","error_type":"Unhealthy"}`)
		}
	}))
	defer srv.Close()
	s, _ := New(Config{API: "tei", URL: srv.URL, APIKey: "wrong"})
	_, err := s.Score(context.Background(), "q", []string{"a"})
	if err == nil || !strings.Contains(err.Error(), "HTTP 401: Unauthorized") {
		t.Errorf("401: err = %v", err)
	}
}

func TestLexicalPrefersTheSource(t *testing.T) {
	got, _ := Lexical{}.Score(context.Background(), "reset a forgotten password", []string{
		"Use Forgot password on the sign-in page to reset a forgotten password.",
		"Storage quota exceeded banners.",
	})
	if got[0] <= got[1] {
		t.Errorf("scores %v", got)
	}
}
