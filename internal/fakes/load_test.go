package fakes

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func chatBody() []byte {
	b, _ := json.Marshal(map[string]any{"model": "m", "max_tokens": 50,
		"messages": []any{map[string]any{"role": "user", "content": "Passage: The cat sat on the mat today.\nQuestion:"}}})
	return b
}

func post(t *testing.T, url string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// Continuous batching: a lone request takes T steps of a + b; with 2·M at
// once the first M share steps of a + b·M and the other M wait in the queue
// for them, never refused.
func TestBatchingShape(t *testing.T) {
	f := NewLLM("m")
	defer f.Close()
	bt := &Batching{StepBase: 4 * time.Millisecond, StepPerRunning: time.Millisecond, MaxRunning: 4, Steps: 5}
	f.Batching = bt
	start := time.Now()
	if code, _, b := post(t, f.URL()+"/chat/completions", chatBody()); code != 200 {
		t.Fatalf("HTTP %d: %s", code, b)
	}
	alone := time.Since(start)
	if want := 5 * 5 * time.Millisecond; alone < want || alone > 6*want {
		t.Errorf("a lone request took %s, want about %s (T·(a+b))", alone, want)
	}

	var wg sync.WaitGroup
	lat := make([]time.Duration, 8)
	start = time.Now()
	for i := range lat {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if code, _, b := post(t, f.URL()+"/chat/completions", chatBody()); code != 200 {
				t.Errorf("HTTP %d: %s", code, b)
			}
			lat[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	all := time.Since(start)
	// Two waves of M=4, each T=5 steps of a + 4b = 8 ms: 80 ms at best.
	if want := 2 * 5 * 8 * time.Millisecond; all < want || all > 4*want {
		t.Errorf("8 requests took %s, want about %s (two waves)", all, want)
	}
	if bt.Peak() != 4 || f.Refused.Load() != 0 || f.Completed.Load() != 9 {
		t.Errorf("peak %d running, %d refused, %d completed; want 4, 0, 9", bt.Peak(), f.Refused.Load(), f.Completed.Load())
	}
	if got, want := bt.BestRate(), 4/(5*0.008); got < want*0.999 || got > want*1.001 {
		t.Errorf("BestRate %.1f, want %.1f", got, want)
	}
	if bt.RateAt(1) >= bt.RateAt(4) {
		t.Errorf("rate with 1 running %.1f ≥ with 4 %.1f: batching should pay", bt.RateAt(1), bt.RateAt(4))
	}
}

// Fixed slots: C at once are served, the others refused at once with TEI's
// overload answer.
func TestSlotsShape(t *testing.T) {
	f := NewReranker("tei", "r")
	defer f.Close()
	f.Latency, f.MaxInFlight = 150*time.Millisecond, 2
	body, _ := json.Marshal(map[string]any{"query": "cat", "texts": []string{"the cat", "a dog"}})
	var mu sync.Mutex
	codes := map[int]int{}
	var overload string
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			code, _, b := post(t, f.URL+"/rerank", body)
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			if code == 429 {
				overload = string(b)
				if d := time.Since(t0); d > 100*time.Millisecond {
					t.Errorf("a refusal took %s: slot servers refuse at once", d)
				}
			}
		}()
	}
	wg.Wait()
	if codes[200] != 2 || codes[429] != 3 || f.Refused.Load() != 3 {
		t.Errorf("answers %v (refused %d), want 2×200 and 3×429", codes, f.Refused.Load())
	}
	var e struct {
		Error     string `json:"error"`
		ErrorType string `json:"error_type"`
	}
	json.Unmarshal([]byte(overload), &e)
	if e.Error != "Model is overloaded" || e.ErrorType != "Overloaded" {
		t.Errorf("overload body %s, want TEI's", overload)
	}
}

// A requests-per-minute limit: the bucket's requests pass with OpenAI's
// headers; the next gets 429, Retry-After and OpenAI's body; the budget
// refills at RPM/60 a second.
func TestRateLimitShape(t *testing.T) {
	f := NewLLM("m")
	defer f.Close()
	now := time.Unix(1700000000, 0)
	f.RateLimit = &RateLimit{RPM: 600, Now: func() time.Time { return now }} // 10/s, burst 10
	for i := 0; i < 10; i++ {
		code, h, b := post(t, f.URL()+"/chat/completions", chatBody())
		if code != 200 {
			t.Fatalf("request %d: HTTP %d: %s", i, code, b)
		}
		if got := h.Get("x-ratelimit-remaining-requests"); got != strconv.Itoa(9-i) {
			t.Errorf("request %d: remaining %q", i, got)
		}
		if h.Get("x-ratelimit-limit-requests") != "600" {
			t.Errorf("limit header %q", h.Get("x-ratelimit-limit-requests"))
		}
	}
	code, h, b := post(t, f.URL()+"/chat/completions", chatBody())
	if code != 429 || h.Get("Retry-After") != "1" || h.Get("x-ratelimit-remaining-requests") != "0" || h.Get("x-ratelimit-reset-requests") != "1s" {
		t.Errorf("over the limit: HTTP %d, Retry-After %q, remaining %q, reset %q", code, h.Get("Retry-After"),
			h.Get("x-ratelimit-remaining-requests"), h.Get("x-ratelimit-reset-requests"))
	}
	var e struct {
		Error struct {
			Message, Type, Code string
			Param               *string
		}
	}
	if json.Unmarshal(b, &e) != nil || e.Error.Code != "rate_limit_exceeded" || e.Error.Type != "requests" ||
		!strings.HasPrefix(e.Error.Message, "Rate limit reached for") || e.Error.Param != nil {
		t.Errorf("429 body %s, want OpenAI's", b)
	}
	now = now.Add(500 * time.Millisecond) // 5 more
	ok := 0
	for i := 0; i < 8; i++ {
		if code, _, _ := post(t, f.URL()+"/chat/completions", chatBody()); code == 200 {
			ok++
		}
	}
	if ok != 5 || f.Refused.Load() != 4 {
		t.Errorf("after 0.5 s: %d passed (want 5), %d refused in all (want 4)", ok, f.Refused.Load())
	}
	if f.RateLimit.BestRate() != 10 {
		t.Errorf("BestRate %v", f.RateLimit.BestRate())
	}
}

// Down refuses connections on the fake's address; Up serves on the same
// address again.
func TestDownUpSamePort(t *testing.T) {
	f := NewLLM("m")
	defer f.Close()
	url := f.URL() + "/chat/completions"
	if code, _, _ := post(t, url, chatBody()); code != 200 {
		t.Fatalf("HTTP %d", code)
	}
	Down(f.Server)
	// A kept-alive connection would fail with EOF: what a new connection
	// gets is the point here.
	http.DefaultClient.CloseIdleConnections()
	_, err := http.Post(url, "application/json", bytes.NewReader(chatBody()))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("while down: %v, want connection refused", err)
	}
	if err := Up(f.Server); err != nil {
		t.Fatal(err)
	}
	if f.URL()+"/chat/completions" != url {
		t.Fatalf("address changed: %s", f.URL())
	}
	if code, _, _ := post(t, url, chatBody()); code != 200 {
		t.Fatalf("after Up: HTTP %d", code)
	}
}

// TEI-like token batching: requests that fit one token budget run in one
// batch whose time grows with its tokens; more than fit wait for the next
// batch. A slot refusal carries Retry-After when set.
func TestTokenBatchingShapeAndRetryAfter(t *testing.T) {
	rr := NewReranker("tei", "m", func(f *Reranker) {
		f.TokenBatching = &TokenBatching{Base: 2 * time.Millisecond, PerToken: 20 * time.Microsecond, MaxBatchTokens: 1000}
	})
	defer rr.Close()
	body, _ := json.Marshal(map[string]any{"query": "q", "texts": []string{strings.Repeat("word ", 300)}}) // ~340 tokens
	per := Tokens(string(body))
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ { // two fit the budget (three would be over 1000 tokens): three batches
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _, b := post(t, rr.URL+"/rerank", body); code != 200 {
				t.Errorf("HTTP %d: %s", code, b)
			}
		}()
	}
	wg.Wait()
	if got, fit := rr.TokenBatching.MeanBatch(), float64(1000/per); got < 1 || got > fit {
		t.Errorf("mean batch %.1f requests, want between 1 and %.0f (%d tokens each, budget 1000)", got, fit, per)
	}
	want := float64(1000) / float64(per) / (2*time.Millisecond + 1000*20*time.Microsecond).Seconds()
	if r := rr.TokenBatching.BestRate(); r < want*0.99 || r > want*1.01 {
		t.Errorf("best rate %.1f, want %.1f", r, want)
	}

	slot := NewReranker("tei", "m", func(f *Reranker) {
		f.Latency, f.MaxInFlight, f.RetryAfter = 200*time.Millisecond, 1, time.Second
	})
	defer slot.Close()
	done := make(chan struct{})
	go func() { post(t, slot.URL+"/rerank", body); close(done) }()
	time.Sleep(50 * time.Millisecond)
	code, h, b := post(t, slot.URL+"/rerank", body)
	if code != 429 || h.Get("Retry-After") != "1" || !strings.Contains(string(b), "Model is overloaded") {
		t.Errorf("beyond the slots: HTTP %d, Retry-After %q, body %s", code, h.Get("Retry-After"), b)
	}
	<-done
}
