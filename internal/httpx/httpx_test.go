package httpx

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func post(t *testing.T, c *Client, url string, body string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(body))
	return c.Do(req)
}

func fast(retries int) *Options {
	return &Options{MaxRetries: retries, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Timeout: 300 * time.Millisecond}
}

// Each failure a real server produces is retried until the answer is good.
func TestRetriesEachFailure(t *testing.T) {
	cases := []struct {
		name  string
		fail  func(w http.ResponseWriter)
		delay time.Duration // at least this long, from Retry-After (those cases fail once, to keep the test fast)
	}{
		{"429 Retry-After seconds", func(w http.ResponseWriter) { w.Header().Set("Retry-After", "1"); w.WriteHeader(429) }, time.Second},
		{"503 Retry-After date", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", time.Now().Add(1500*time.Millisecond).UTC().Format(http.TimeFormat))
			w.WriteHeader(503)
		}, 500 * time.Millisecond},
		{"500", func(w http.ResponseWriter) { w.WriteHeader(500) }, 0},
		{"502", func(w http.ResponseWriter) { w.WriteHeader(502) }, 0},
		{"504", func(w http.ResponseWriter) { w.WriteHeader(504) }, 0},
		{"HTML body", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html>oops</html>")
		}, 0},
		{"truncated JSON", func(w http.ResponseWriter) { io.WriteString(w, `{"choices":[{"mess`) }, 0},
		{"hang past the timeout", func(w http.ResponseWriter) { time.Sleep(time.Second) }, 0},
		{"connection reset", func(w http.ResponseWriter) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.(interface{ SetLinger(int) error }).SetLinger(0)
			conn.Close()
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if string(b) != `{"a":1}` {
					t.Errorf("attempt %d got body %q", n.Load()+1, b)
				}
				fails := int64(2)
				if tc.delay > 0 {
					fails = 1
				}
				if n.Add(1) <= fails {
					tc.fail(w)
					return
				}
				io.WriteString(w, `{"ok":true}`)
			}))
			defer srv.Close()
			c := New(fast(8))
			start := time.Now()
			resp, err := post(t, c, srv.URL, `{"a":1}`)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != `{"ok":true}` || c.Retries() != n.Load()-1 || n.Load() < 2 {
				t.Errorf("body %q after %d attempts, %d retries", b, n.Load(), c.Retries())
			}
			if took := time.Since(start); took < tc.delay {
				t.Errorf("took %s, Retry-After asked for %s per retry", took, tc.delay)
			}
		})
	}
}

func TestNotRetried(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 422} {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.WriteHeader(status)
			io.WriteString(w, `{"error":{"message":"no"}}`)
		}))
		resp, err := post(t, New(fast(8)), srv.URL, `{}`)
		srv.Close()
		if err != nil || resp.StatusCode != status || n.Load() != 1 {
			t.Errorf("status %d: resp %v err %v after %d attempts; want the answer after 1", status, resp, err, n.Load())
		}
	}
}

func TestGivesUpAfterMaxRetries(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); w.WriteHeader(503) }))
	defer srv.Close()
	resp, err := post(t, New(fast(3)), srv.URL, `{}`)
	if err != nil || resp.StatusCode != 503 || n.Load() != 4 {
		t.Errorf("got %v, %v after %d attempts; want the final 503 after 4", resp, err, n.Load())
	}
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>") }))
	defer srv2.Close()
	// An answer that is never JSON is malformed: with none ever well
	// formed, a misconfiguration, with the server's words.
	if _, err := post(t, New(fast(2)), srv2.URL, `{}`); KindOf(err) != Config || !strings.Contains(err.Error(), "not valid JSON") || !strings.Contains(err.Error(), "<html>") {
		t.Errorf("invalid JSON forever: err = %v", err)
	}
}

func TestCancelStopsRetrying(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Retry-After", "30"); w.WriteHeader(429) }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(`{}`))
	start := time.Now()
	if _, err := New(fast(8)).Do(req); err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("err %v after %s; want the context error at once", err, time.Since(start))
	}
}

func TestExtraBodyKeysAndZeroTemperature(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&got)
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	c := New(&Options{ExtraBody: map[string]any{"temperature": 0.0, "top_k": 20}})
	// go-openai would have omitted "temperature": 0 from this body.
	if _, err := post(t, c, srv.URL, `{"model":"m","max_tokens":50}`); err != nil {
		t.Fatal(err)
	}
	if v, ok := got["temperature"]; !ok || v != 0.0 || got["top_k"] != 20.0 || got["model"] != "m" {
		t.Errorf("body = %v", got)
	}
}

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }))
	defer srv.Close()
	if err := Probe(context.Background(), srv.URL+"/v1/models", time.Second); err != nil {
		t.Errorf("a 404 is still a server: %v", err)
	}
	if err := Probe(context.Background(), "http://127.0.0.1:1/v1/models", time.Second); err == nil {
		t.Error("closed port reported reachable")
	}
}
