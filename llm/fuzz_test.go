package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/synthq/synthq/internal/fakes"
)

// FuzzChatAnswer feeds any 2xx body to the chat client as go-openai reads
// it: Generate never panics; an answer the HTTP layer's check accepts
// (checkAnswer) yields one answer per choice with token counts in range,
// and Generate accepts nothing that check refuses when the body is one
// JSON value. Seeded from llama-server's recorded answers and the shapes
// of vLLM, Ollama and OpenAI.
func FuzzChatAnswer(f *testing.F) {
	for _, b := range fakes.RecordedAnswers("chat") {
		f.Add(uint8(2), b)
		f.Add(uint8(1), b)
	}
	for _, s := range []string{
		`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"q1\nq2"},"logprobs":null,"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens":80,"total_tokens":90,"completion_tokens":10},"prompt_logprobs":null}`,
		`{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"llama3.1:8b","system_fingerprint":"fp_ollama","choices":[{"index":0,"message":{"role":"assistant","content":"a question?"},"finish_reason":"length"}],"usage":{"prompt_tokens":2048,"completion_tokens":50,"total_tokens":2098}}`,
		`{"choices":[{"index":1,"message":{"content":"b"}},{"index":0,"message":{"content":"a"}}],"usage":{"prompt_tokens":-5,"completion_tokens":1e15}}`,
		`{"choices":[{"index":3,"message":{"content":"x"}}]}`,
		`{"choices":"oops"}`,
		`{"choices":[]}`,
	} {
		f.Add(uint8(2), []byte(s))
	}
	f.Fuzz(func(t *testing.T, n uint8, body []byte) {
		n = n%4 + 1
		g := NewOpenAI("http://llm.invalid/v1", model, "", fakes.BodyDoer(body))
		req := request("a passage")
		req.N = int(n)
		ans, err := g.Generate(context.Background(), req)
		checked := checkAnswer(body)
		if checked == nil && err != nil {
			t.Fatalf("the HTTP layer accepts the answer, Generate fails: %v", err)
		}
		if err != nil {
			return
		}
		if checked != nil && singleJSON(body) {
			t.Fatalf("Generate accepts an answer the HTTP layer refuses (%v)", checked)
		}
		if len(ans) == 0 {
			t.Fatal("no answers and no error")
		}
		if a := ans[0]; a.PromptTokens < 0 || a.PromptTokens > maxUsage || a.CompletionTokens < 0 || a.CompletionTokens > maxUsage {
			t.Fatalf("token counts out of range: %+v", a)
		}
	})
}

// singleJSON reports whether b is one JSON value, as json.Unmarshal wants
// (go-openai's decoder stops after the first value and ignores the rest).
func singleJSON(b []byte) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	var v any
	if d.Decode(&v) != nil {
		return false
	}
	_, err := d.Token()
	return err == io.EOF
}
