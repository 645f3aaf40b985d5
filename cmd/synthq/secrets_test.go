package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/pipeline"
)

// Credentials given inside server URLs (user:password@, and key-like query
// parameters some gateways take) reach no file, no store record, no log line
// and no error message: every URL synthq stores or shows goes through
// redact.URL.
func TestURLCredentialsNeverWritten(t *testing.T) {
	const secret = "URLSECRET"
	out := t.TempDir()
	llm, rr, _ := fakeArgs(t, "cohere", out)
	emb := fakes.NewEmbedder("vllm", "e5", 16)
	defer emb.Close()
	withUser := func(u string) string { return strings.Replace(u, "http://", "http://user:"+secret+"-pw@", 1) }
	// One passage the LLM refuses: a failure reason is stored and printed.
	llm.Fault = func(n int64, body []byte) string {
		if strings.Contains(string(body), "Passage: Installing the desktop client") {
			return "400-context"
		}
		return ""
	}
	args := []string{"run", "--corpus", corpus, "--out", out, "--query-types", "questions,titles",
		"--llm-url", withUser(llm.URL()), "--llm-model", model,
		"--teacher-url", withUser(rr.URL), "--teacher-api", "cohere", "--teacher-model", "BAAI/bge-reranker-v2-m3",
		"--retriever", "bm25,dense", "--embed-url", withUser(emb.URL()), "--embed-model", "e5",
		"--min-candidates", "5", "--concurrency", "4", "--dev-fraction", "0.2", "--seed", "7"}
	code, msg := synthq(t, context.Background(), args...)
	if code != exitFailedItems {
		t.Fatalf("exit %d, want %d: %s", code, exitFailedItems, msg)
	}
	logs := msg
	store := filepath.Join(out, "store")
	for _, cmd := range [][]string{{"stats", "--store", store}, {"stats", "--store", store, "--json"},
		{"inspect", "--store", store, "kb001:questions:0"}, {"inspect", "--store", store, "--json", "kb001:titles:0"},
		{"export", "--store", store, "--out", filepath.Join(out, "again")}} {
		_, msg := synthq(t, context.Background(), cmd...)
		logs += msg
	}
	cfg := storedConfig(t, out)
	if len(cfg.LLMURLs) != 1 || cfg.LLMURLs[0] != llm.URL() {
		t.Errorf("stored LLM URL %q, want %q (redacted, otherwise as given)", cfg.LLMURLs, llm.URL())
	}

	// Servers that cannot be reached, addressed with key-like parameters:
	// the error names the URL it tried, without the secrets.
	out2 := t.TempDir()
	dead := "http://user:" + secret + "@127.0.0.1:1/v1?api_key=" + secret + "&token=" + secret + "&x-goog-api-key=" + secret
	code, msg = synthq(t, context.Background(), "run", "--corpus", corpus, "--out", out2, "--quiet",
		"--llm-url", dead, "--teacher-url", dead, "--max-retries", "0")
	if code != exitError || !strings.Contains(msg, "127.0.0.1:1") || !strings.Contains(msg, "api_key=REDACTED") {
		t.Errorf("unreachable server: exit %d: %s", code, msg)
	}
	logs += msg

	if strings.Contains(logs, secret) {
		t.Errorf("output shows a URL credential:\n%s", logs)
	}
	for _, dir := range []string{out, out2} {
		noSecretIn(t, dir, secret)
	}
}

// noSecretIn fails if secret is in any file under dir or in any key or value
// of the store dir/store (read through Badger: its tables may be compressed).
func noSecretIn(t *testing.T, dir, secret string) {
	t.Helper()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s contains a URL credential", p)
		}
		return nil
	})
	st, err := pipeline.OpenStore(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Scan("", func(k string, v []byte) error {
		if strings.Contains(k, secret) || bytes.Contains(v, []byte(secret)) {
			t.Errorf("store record %q holds a URL credential: %.200s", k, v)
		}
		return nil
	})
}
