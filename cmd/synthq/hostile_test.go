package main

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/pipeline"
)

// hostileArgs starts an LLM, a TEI teacher and a TEI embedder and returns
// them with the arguments of a run that uses all three (BM25 and dense
// runs fused).
func hostileArgs(t *testing.T, out string) (*fakes.LLM, *fakes.Reranker, *fakes.Embedder, []string) {
	llm := fakes.NewLLM(model)
	rr := fakes.NewReranker("tei", "BAAI/bge-reranker-v2-m3")
	emb := fakes.NewEmbedder("tei", "fake-e5", 32)
	t.Cleanup(llm.Close)
	t.Cleanup(rr.Close)
	t.Cleanup(emb.Close)
	return llm, rr, emb, []string{"run", "--corpus", corpus, "--out", out, "--quiet",
		"--llm-url", llm.URL(), "--llm-model", model,
		"--teacher-url", rr.URL, "--teacher-api", "tei", "--teacher-model", "BAAI/bge-reranker-v2-m3",
		"--retriever", "bm25,dense", "--embed-url", emb.Server.URL, "--embed-model", "fake-e5",
		"--query-prefix", "query: ", "--passage-prefix", "passage: ", "--embed-batch", "16",
		"--query-types", "questions,keywords", "--min-candidates", "5", "--concurrency", "8",
		"--dev-fraction", "0.2", "--seed", "7", "--max-outage", "20s", "--request-timeout", "5s"}
}

// hostileEvery answers the hostile modes to some request bodies, chosen by
// body hash (not timing): always to one in perm (0: none), the first
// attempt only to one in three of the others.
func hostileEvery(c *fakes.Counter, modes []string, perm uint64) fakes.Fault {
	return func(n int64, body []byte) string {
		h := pipeline.Hash64("hostile", string(body))
		mode := modes[(h/97)%uint64(len(modes))]
		if perm > 0 && h%perm == 0 {
			return mode
		}
		if c.Count(body) == 1 && h%3 == 1 {
			return mode
		}
		return ""
	}
}

// TestRunAgainstHostileServers: `synthq run` against an LLM, a teacher
// and an embedder that answer a third of first attempts, and always some
// requests, with what broken or hostile servers send with HTTP 200 (a
// 1 GiB body, the wrong shape, NaN, numbers past float32, absurd token
// counts, zero vectors) never panics, ends within --max-outage (exit 0, or
// 3 naming the failed items: a malformed answer is asked again after
// backoffs of up to 1, 2 and 4 s, then fails its item), stores no number
// that is not finite, and once the servers behave a re-run of the same
// command with --retry-failed exports exactly what a run against
// well-behaved servers does: nothing hostile was kept. (A vector of
// denormals is finite and normalises to a unit vector, so it is a real
// answer, not hostile here: embed's tests cover it.)
func TestRunAgainstHostileServers(t *testing.T) {
	clean := t.TempDir()
	_, _, _, cleanArgs := hostileArgs(t, clean)
	if code, msg := synthq(t, context.Background(), cleanArgs...); code != 0 {
		t.Fatalf("clean run: exit %d: %s", code, msg)
	}

	out := t.TempDir()
	llm, rr, emb, args := hostileArgs(t, out)
	llm.Fault = hostileEvery(&llm.Counter, []string{"huge", "malformed", "absurd"}, 29)
	rr.Fault = hostileEvery(&rr.Counter, []string{"huge", "malformed", "nan", "absurd"}, 31)
	emb.Fault = hostileEvery(&emb.Counter, []string{"huge", "malformed", "nan", "absurd", "zero"}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	code, msg := synthq(t, ctx, args...)
	took := time.Since(start)
	if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
		t.Fatalf("panic: %s", msg)
	}
	if code != 0 && code != exitFailedItems {
		t.Fatalf("hostile run: exit %d, want 0 or %d: %s", code, exitFailedItems, msg)
	}
	t.Logf("hostile run: exit %d in %v: %s", code, took, msg)
	if took > 20*time.Second {
		t.Errorf("hostile run took %v, past --max-outage 20s", took)
	}
	if llm.HugeSent.Load()+rr.HugeSent.Load()+emb.HugeSent.Load() == 0 {
		t.Error("no huge answer was sent: the test does not test it")
	}
	checkStoredFinite(t, filepath.Join(out, "store"))

	llm.Fault, rr.Fault, emb.Fault = nil, nil, nil
	if code, msg := synthq(t, context.Background(), append(args, "--retry-failed")...); code != 0 {
		t.Fatalf("re-run against well-behaved servers: exit %d: %s", code, msg)
	}
	checkStoredFinite(t, filepath.Join(out, "store"))
	sameFiles(t, clean, out)
}

// checkStoredFinite fails t for any cached or derived number in the store
// at dir that is not finite: vectors (vec/), teacher scores (score/), hit
// lists (hits/) and labelled lists (l/).
func checkStoredFinite(t *testing.T, dir string) {
	t.Helper()
	st, err := pipeline.OpenStoreReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	finite := func(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }
	n := 0
	check := func(prefix string, fn func(k string, v []byte) error) {
		if err := st.Scan(prefix, func(k string, v []byte) error { n++; return fn(prefix+k, v) }); err != nil {
			t.Error(err)
		}
	}
	check(pipeline.PrefixVec, func(k string, v []byte) error {
		if len(v) == 0 || len(v)%4 != 0 {
			return errors.New(k + ": not a float32 vector")
		}
		for i := 0; i < len(v); i += 4 {
			if !finite(math.Float32frombits(binary.LittleEndian.Uint32(v[i:]))) {
				return errors.New(k + ": a vector entry is not finite")
			}
		}
		return nil
	})
	check(pipeline.PrefixScore, func(k string, v []byte) error {
		for len(v) > 0 { // (uvarint id length, id, float32)…, as stages' encodeScores
			l, m := binary.Uvarint(v)
			if m <= 0 || l > uint64(len(v)-m) || uint64(len(v)-m)-l < 4 {
				return errors.New(k + ": corrupt score record")
			}
			v = v[m+int(l):]
			if !finite(math.Float32frombits(binary.LittleEndian.Uint32(v))) {
				return errors.New(k + ": a score is not finite")
			}
			v = v[4:]
		}
		return nil
	})
	check(pipeline.PrefixHits, func(k string, v []byte) error {
		_, err := dataset.DecodeChecked[dataset.HitList](k, v)
		return err
	})
	check(pipeline.PrefixLabel, func(k string, v []byte) error {
		_, err := dataset.DecodeChecked[dataset.Labelled](k, v)
		return err
	})
	if n == 0 {
		t.Error("nothing stored to check")
	}
}
