package tokenize

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/internal/httpx"
)

// Each real server's /tokenize form is found by the probe and counted
// exactly as the server counts; a text counted before costs no request.
func TestServerForms(t *testing.T) {
	toc := strings.Repeat(". . . . . . 394 POLLINATION AND POLLEN TUBE GROWTH ", 20)
	cases := []struct {
		name, form string
		start      func(t *testing.T) (url string, n *atomic.Int64)
	}{
		{"llama-server reranker", "llama.cpp", func(t *testing.T) (string, *atomic.Int64) {
			f := fakes.NewReranker("cohere", "bge", func(f *fakes.Reranker) { f.Flavor = "llamacpp" })
			t.Cleanup(f.Close)
			return f.URL, &f.Tokenized
		}},
		{"TEI reranker", "tei", func(t *testing.T) (string, *atomic.Int64) {
			f := fakes.NewReranker("tei", "bge")
			t.Cleanup(f.Close)
			return f.URL, &f.Tokenized
		}},
		{"vLLM score", "vllm", func(t *testing.T) (string, *atomic.Int64) {
			f := fakes.NewReranker("vllm-score", "bge")
			t.Cleanup(f.Close)
			return f.URL, &f.Tokenized
		}},
		{"llama-server embeddings (/v1 base)", "llama.cpp", func(t *testing.T) (string, *atomic.Int64) {
			f := fakes.NewEmbedder("llamacpp", "e5", 8)
			t.Cleanup(f.Close)
			return f.URL(), &f.Tokenized
		}},
		{"TEI embeddings", "tei", func(t *testing.T) (string, *atomic.Int64) {
			f := fakes.NewEmbedder("tei", "e5", 8)
			t.Cleanup(f.Close)
			return f.URL(), &f.Tokenized
		}},
		{"vLLM embeddings", "vllm", func(t *testing.T) (string, *atomic.Int64) {
			f := fakes.NewEmbedder("vllm", "e5", 8)
			t.Cleanup(f.Close)
			return f.URL(), &f.Tokenized
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url, n := tc.start(t)
			s := NewServer(http.DefaultClient, url, "", "m", "teacher")
			for _, text := range []string{"a short passage", toc} {
				got, err := s.Count(context.Background(), text)
				if err != nil {
					t.Fatal(err)
				}
				if want := fakes.WindowTokens(text); got != want {
					t.Errorf("count %d, the server counts %d", got, want)
				}
			}
			if s.Form() != tc.form {
				t.Errorf("form %q, want %q", s.Form(), tc.form)
			}
			before := n.Load()
			if _, err := s.Count(context.Background(), toc); err != nil || n.Load() != before {
				t.Errorf("a text counted before was asked again (%d → %d requests, %v)", before, n.Load(), err)
			}
		})
	}
}

// A server with no /tokenize (a hosted API) is a misconfiguration named with
// the flag to change; a server that is down is an endpoint fault, waited
// out like any request, never a misconfiguration. No key in any message.
func TestServerFaults(t *testing.T) {
	hosted := fakes.NewReranker("cohere", "rerank-v3")
	defer hosted.Close()
	_, err := NewServer(http.DefaultClient, hosted.URL, "sk-SECRET", "m", "teacher").Count(context.Background(), "text")
	var f *httpx.Fault
	if !errors.As(err, &f) || f.Kind != httpx.Config {
		t.Fatalf("no /tokenize: %v, want a Config fault", err)
	}
	if msg := f.Error() + f.Hint; !strings.Contains(msg, "--teacher-tokenizer") || strings.Contains(msg, "SECRET") {
		t.Errorf("message %q: want the flag named and no key", msg)
	}
	down := fakes.NewEmbedder("tei", "e5", 8)
	url := down.URL()
	down.Close()
	_, err = NewServer(http.DefaultClient, url, "", "m", "embed").Count(context.Background(), "text")
	if httpx.KindOf(err) != httpx.Endpoint {
		t.Errorf("server down: %v (kind %v), want an Endpoint fault", err, httpx.KindOf(err))
	}
}

func TestDecodeCount(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int
		ok   bool
	}{
		{`{"tokens":[1,2,3]}`, 3, true},
		{`{"tokens":[]}`, 0, true},
		{`{"count":4,"max_model_len":512,"tokens":[1,2,3,4],"token_strs":null}`, 4, true},
		{`[[{"id":0,"text":"<s>","special":true,"start":null,"stop":null},{"id":9,"text":"a","special":false,"start":0,"stop":1}]]`, 1, true},
		{`[{"id":9,"text":"a","special":false,"start":0,"stop":1}]`, 1, true},
		{`{"error":"x"}`, 0, false},
		{`"tokens"`, 0, false},
		{``, 0, false},
		{`{"count":-1}`, 0, false},
	} {
		got, err := decodeCount([]byte(tc.body))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: %d, %v; want %d, ok %v", tc.body, got, err, tc.want, tc.ok)
		}
	}
}
