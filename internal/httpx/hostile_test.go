package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synthq/synthq/internal/redact"
)

// nastyPasswords are passwords of the shapes that break URL parsing or
// redaction: '/', '#', '?', '@', spaces, quotes, a colon, a bad %-escape,
// non-ASCII, control characters, digits that read as a port. Each holds
// the pieces "S3CR" and "XPW9", which must appear in no output.
var nastyPasswords = []string{
	"S3CR/XPW9", "S3CR#XPW9", "S3CR?XPW9", "S3CR@XPW9", "S3CR XPW9", `S3CR"XPW9`, "S3CR'XPW9",
	"S3CR:XPW9", "S3CR%zzXPW9", "S3CRäXPW9", "S3CR\tXPW9", "S3CR<XPW9>", "S3CR`XPW9", "S3CR\\XPW9",
	"1234/S3CR/XPW9", "1234#S3CRXPW9", "S3CR&key=XPW9", "S3CR/..%2FXPW9", "S3CR XPW9@evil", "S3CR\nXPW9",
}

func leaks(s string) bool { return strings.Contains(s, "S3CR") || strings.Contains(s, "XPW9") }

// TestNastyPasswordsNeverShown: whatever a password holds, no function that
// shows a URL or an error about it shows the password: RedactURL,
// RedactText (in an error sentence), CheckURL, Probe, PostJSON and Do.
func TestNastyPasswordsNeverShown(t *testing.T) {
	ctx := context.Background()
	for _, pw := range nastyPasswords {
		for _, raw := range []string{
			"http://user:" + pw + "@127.0.0.1:1/v1",
			"https://" + pw + "@host.invalid/v1?model=m",
			"http://user:" + pw + "@127.0.0.1:1/v1?key=XPW9",
			"user:" + pw + "@host:8000/v1",
		} {
			show := map[string]string{"RedactURL": redact.URL(raw)}
			if strings.Contains(raw, "://") && !strings.ContainsAny(pw, "\n\t") {
				// Free text is redacted by its URLs' schemes; URLs with
				// control characters or no scheme never reach text:
				// CheckURL refuses them at start-up, url.Parse before
				// any request.
				show["RedactText"] = redact.Text("llm POST " + raw + "/chat/completions: connection refused (tried " + raw + ").")
			}
			if err := CheckURL(raw); err != nil {
				show["CheckURL"] = err.Error()
			}
			if err := Probe(ctx, raw, 200*time.Millisecond); err != nil {
				show["Probe"] = err.Error()
			}
			if _, _, err := PostJSON(ctx, http.DefaultClient, raw+"/embeddings", "", []byte(`{}`)); err != nil {
				show["PostJSON"] = err.Error()
			}
			c := New(&Options{MaxRetries: -1, Timeout: 200 * time.Millisecond, BaseDelay: time.Millisecond,
				MaxOutage: 50 * time.Millisecond, Endpoints: []string{"http://127.0.0.1:1/v1", raw}, Role: "llm"})
			for i := 0; i < 2; i++ {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:1/v1/chat", strings.NewReader(`{}`))
				if _, err := c.Do(req); err != nil {
					show[fmt.Sprint("Do ", i)] = err.Error()
				}
			}
			for what, s := range show {
				if leaks(s) {
					t.Errorf("%s of %q shows the password: %s", what, raw, s)
				}
			}
		}
		// Percent-encoded, the same password is a good URL, redacted whole.
		enc := "http://" + url.UserPassword("user", pw).String() + "@127.0.0.1:1/v1"
		if err := CheckURL(enc); err != nil {
			t.Errorf("%q percent-encoded: %v", pw, err)
		}
		if r := redact.URL(enc); r != "http://127.0.0.1:1/v1" {
			t.Errorf("redact.URL(%q) = %q", enc, r)
		}
	}
}

// TestBadSecondEndpoint: an endpoint URL that does not parse fails its
// request with a Config fault naming the role, never a nil answer with a
// nil error (go-openai panicked on it), and never shows the password.
func TestBadSecondEndpoint(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) }))
	defer srv.Close()
	c := New(&Options{Timeout: time.Second, BaseDelay: time.Millisecond, Concurrency: 1, Role: "llm",
		Endpoints: []string{srv.URL + "/v1", "http://u:S3CR#XPW9@" + strings.TrimPrefix(srv.URL, "http://") + "/v1"}})
	configs := 0
	for i := 0; i < 6; i++ {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(`{}`))
		resp, err := c.Do(req)
		switch {
		case resp == nil && err == nil:
			t.Fatal("Do returned no answer and no error")
		case err != nil:
			if KindOf(err) != Config || !strings.Contains(err.Error(), "check every --llm-url") {
				t.Errorf("err %v, want a Config fault", err)
			}
			if leaks(err.Error()) {
				t.Errorf("the error shows the password: %v", err)
			}
			configs++
		}
	}
	if configs == 0 {
		t.Error("the bad endpoint was never tried")
	}
}

// hugeServer answers every request with n bytes of JSON whitespace and then
// the answer, streamed; it counts what it managed to write.
func hugeServer(n int64, status int, answer string, sent *atomic.Int64) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		pad := bytes.Repeat([]byte(" "), 64<<10)
		for i := int64(0); i < n; i += int64(len(pad)) {
			k, err := w.Write(pad)
			sent.Add(int64(k))
			if err != nil {
				return
			}
		}
		io.WriteString(w, answer)
	}))
}

// TestAnswerCap: an answer over its request's cap is not read past the cap
// (a 1 GiB answer costs the client about the cap, not a gigabyte), fails
// with a message naming the cap and what the request was, as an Item fault
// while the server answers others well and a Config fault when it never
// does; an error answer over the cap is cut and still classified.
func TestAnswerCap(t *testing.T) {
	var sent atomic.Int64
	huge := hugeServer(1<<30, 200, `{"ok":true}`, &sent)
	defer huge.Close()
	small := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"ok":true}`) }))
	defer small.Close()
	exp := Expect{MaxBytes: 1 << 20, What: "a test answer"}
	do := func(c *Client, url string) error {
		req, _ := http.NewRequestWithContext(WithExpect(context.Background(), exp), http.MethodPost, url, strings.NewReader(`{}`))
		resp, err := c.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			if int64(len(b)) > exp.MaxBytes {
				t.Errorf("answer of %d bytes handed over", len(b))
			}
		}
		return err
	}
	opts := func(eps ...string) *Options {
		return &Options{Timeout: 20 * time.Second, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Role: "embed", Endpoints: eps}
	}
	// Nothing ever well formed: a misconfiguration.
	c := New(opts(huge.URL))
	err := do(c, huge.URL+"/x")
	if KindOf(err) != Config || !strings.Contains(err.Error(), "larger than 1.0 MiB, the most a test answer can need") ||
		!strings.Contains(err.Error(), "hint: every answer so far was malformed") {
		t.Errorf("all answers huge: err %v, want a Config fault naming the cap", err)
	}
	if s := sent.Load(); s > int64(malformedConfigAfter)*(32<<20) {
		t.Errorf("the server wrote %d MiB for %d answers: the client read on past the cap", s>>20, malformedConfigAfter)
	}
	// Well-formed answers seen: the item's fault, after 3 retries.
	c = New(opts(small.URL, huge.URL))
	if err := do(c, small.URL+"/x"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(WithExpect(context.Background(), exp), http.MethodPost, huge.URL+"/x", strings.NewReader(`{}`))
	c2 := New(opts(huge.URL))
	c2.wellFormed.Add(1)
	if _, err := c2.Do(req); KindOf(err) != Item || !strings.Contains(err.Error(), "answer malformed 4 times") {
		t.Errorf("one request's answers huge: err %v, want an Item fault after 4 tries", err)
	}
	// An error answer over the cap: cut, classified by its status.
	var sent2 atomic.Int64
	bigErr := hugeServer(100<<20, 400, `{"error":"x"}`, &sent2)
	defer bigErr.Close()
	req, _ = http.NewRequestWithContext(WithExpect(context.Background(), exp), http.MethodPost, bigErr.URL, strings.NewReader(`{}`))
	resp, err := New(&Options{Timeout: 20 * time.Second}).Do(req)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("huge 400: %v %v", resp, err)
	}
	if b, _ := io.ReadAll(resp.Body); len(b) > maxErrorBody {
		t.Errorf("error answer of %d bytes kept", len(b))
	}
	// PostJSON with another Doer caps too.
	_, _, err = PostJSON(WithExpect(context.Background(), exp), http.DefaultClient, huge.URL, "", []byte(`{}`))
	if !IsMalformed(err) || !strings.Contains(err.Error(), "larger than 1.0 MiB") {
		t.Errorf("PostJSON of a huge answer: %v", err)
	}
}

// chatCheck is what a chat client expects: choices as a list.
func chatCheck(b []byte) error {
	var r struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	if len(r.Choices) == 0 {
		return errors.New("no choices")
	}
	return nil
}

// TestMalformedAnswers: a valid-JSON answer of the wrong shape is asked
// again; a request whose answers stay malformed while others are well
// formed fails as an Item fault; when every answer is malformed the run's
// server is misconfigured: a Config fault with the server's words and a
// hint; an answer malformed now and then costs a retry and nothing else.
func TestMalformedAnswers(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := n.Add(1)
		switch {
		case r.URL.Path == "/bad" || r.URL.Path == "/every" && k%7 == 0:
			io.WriteString(w, `{"choices":"oops"}`)
		default:
			io.WriteString(w, `{"choices":[{"message":{"content":"q"}}]}`)
		}
	}))
	defer srv.Close()
	do := func(c *Client, path string) error {
		ctx := WithExpect(context.Background(), Expect{What: "a chat completion", Check: chatCheck})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, strings.NewReader(`{}`))
		_, err := c.Do(req)
		return err
	}
	opts := &Options{Timeout: time.Second, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Role: "llm", Endpoints: []string{srv.URL}}

	c := New(opts)
	for i := 0; i < 40; i++ {
		if err := do(c, "/every"); err != nil {
			t.Fatalf("request %d with every 7th answer malformed: %v", i, err)
		}
	}
	if c.Retries() == 0 {
		t.Error("no malformed answer was asked again")
	}
	before := n.Load()
	err := do(c, "/bad")
	if KindOf(err) != Item || !strings.Contains(err.Error(), "while the server answered other requests well") ||
		!strings.Contains(err.Error(), `the server answered: {"choices":"oops"}`) {
		t.Errorf("one request malformed: err %v, want an Item fault with the server's words", err)
	}
	if got := n.Load() - before; got != 1+malformedRetries {
		t.Errorf("%d attempts, want %d", got, 1+malformedRetries)
	}

	c = New(opts)
	before = n.Load()
	err = do(c, "/bad")
	var f *Fault
	if !errors.As(err, &f) || f.Kind != Config || f.Hint != MalformedHint("llm") || !strings.Contains(err.Error(), `{"choices":"oops"}`) {
		t.Errorf("every answer malformed: err %v, want a Config fault with the hint", err)
	}
	if got := n.Load() - before; got != malformedConfigAfter {
		t.Errorf("%d attempts before the misconfiguration, want %d", got, malformedConfigAfter)
	}
}
