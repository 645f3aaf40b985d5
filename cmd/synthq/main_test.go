package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/pipeline"
)

const model = "meta-llama/Llama-3.1-8B-Instruct"

var corpus = filepath.Join("..", "..", "testdata", "corpus.jsonl")

func synthq(t *testing.T, ctx context.Context, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(ctx, append([]string{"synthq"}, args...), &out, &errb)
	return code, out.String() + errb.String()
}

// fakeArgs starts fakes and returns the run arguments that use them.
func fakeArgs(t *testing.T, api, out string) (*fakes.LLM, *fakes.Reranker, []string) {
	return fakeArgsLatency(t, api, out, 0, 0)
}

// fakeArgsLatency is fakeArgs with fakes that answer after the given
// latencies, set before they start.
func fakeArgsLatency(t *testing.T, api, out string, llmLatency, rrLatency time.Duration) (*fakes.LLM, *fakes.Reranker, []string) {
	llm := fakes.NewLLM(model, func(f *fakes.LLM) { f.Latency = llmLatency })
	rr := fakes.NewReranker(api, "BAAI/bge-reranker-v2-m3", func(f *fakes.Reranker) { f.Latency = rrLatency })
	t.Cleanup(llm.Close)
	t.Cleanup(rr.Close)
	return llm, rr, []string{"run", "--corpus", corpus, "--out", out, "--quiet",
		"--llm-url", llm.URL(), "--llm-model", model,
		"--teacher-url", rr.URL, "--teacher-api", api, "--teacher-model", "BAAI/bge-reranker-v2-m3",
		"--min-candidates", "5", "--concurrency", "4", "--dev-fraction", "0.2", "--seed", "7"}
}

type row struct {
	QID, Query, Type, Source, Split string
	DocIDs, Texts                   []string
	Scores, Raw                     []float32
	Ranks                           []int32
}

var wantColumns = []string{"qid", "query", "query_type", "source_docid", "split", "docids", "texts", "teacher_scores", "teacher_raw", "retriever_ranks"}

func rowsOf(t *testing.T, rec arrow.Record, dst []row) []row {
	t.Helper()
	str := func(c int) *array.String { return rec.Column(c).(*array.String) }
	list := func(c int) *array.List { return rec.Column(c).(*array.List) }
	for i := 0; i < int(rec.NumRows()); i++ {
		r := row{QID: str(0).Value(i), Query: str(1).Value(i), Type: str(2).Value(i), Source: str(3).Value(i), Split: str(4).Value(i)}
		for c := 5; c < 10; c++ {
			l := list(c)
			lo, hi := l.ValueOffsets(i)
			for j := lo; j < hi; j++ {
				switch v := l.ListValues().(type) {
				case *array.String:
					if c == 5 {
						r.DocIDs = append(r.DocIDs, v.Value(int(j)))
					} else {
						r.Texts = append(r.Texts, v.Value(int(j)))
					}
				case *array.Float32:
					if c == 7 {
						r.Scores = append(r.Scores, v.Value(int(j)))
					} else {
						r.Raw = append(r.Raw, v.Value(int(j)))
					}
				case *array.Int32:
					r.Ranks = append(r.Ranks, v.Value(int(j)))
				}
			}
		}
		dst = append(dst, r)
	}
	return dst
}

// readArrow reads an Arrow IPC stream file as Hugging Face datasets does
// (pyarrow.ipc.open_stream), checking for leaks.
func readArrow(t *testing.T, path string) (*arrow.Schema, []row) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := ipc.NewReader(f, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatalf("%s is not an Arrow IPC stream: %v", path, err)
	}
	defer rd.Release()
	var rows []row
	for rd.Next() {
		rows = rowsOf(t, rd.Record(), rows)
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	return rd.Schema(), rows
}

func readParquet(t *testing.T, path string) []row {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.NewGoAllocator())
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 1<<20)
	defer tr.Release()
	var rows []row
	for tr.Next() {
		rows = rowsOf(t, tr.Record(), rows)
	}
	return rows
}

func checkOutput(t *testing.T, out string) (train, dev []row) {
	t.Helper()
	for _, split := range []string{"train", "dev"} {
		schema, rows := readArrow(t, filepath.Join(out, split+".arrow"))
		var names []string
		for _, f := range schema.Fields() {
			names = append(names, f.Name)
		}
		if !slices.Equal(names, wantColumns) {
			t.Fatalf("%s.arrow columns = %v, want %v", split, names, wantColumns)
		}
		if v, _ := schema.Metadata().GetValue("synthq_version"); v == "" {
			t.Errorf("%s.arrow: no synthq_version in schema metadata", split)
		}
		if pq := readParquet(t, filepath.Join(out, split+".parquet")); len(pq) != len(rows) {
			t.Errorf("%s.parquet has %d rows, %s.arrow %d", split, len(pq), split, len(rows))
		} else if len(rows) > 0 && pq[0].QID != rows[0].QID {
			t.Errorf("%s.parquet first row %s, arrow %s", split, pq[0].QID, rows[0].QID)
		}
		for i, r := range rows {
			if r.Split != split {
				t.Errorf("%s row %s has split %q", split, r.QID, r.Split)
			}
			if i > 0 && rows[i-1].QID >= r.QID {
				t.Errorf("%s rows not sorted by qid: %s then %s", split, rows[i-1].QID, r.QID)
			}
			n := len(r.DocIDs)
			if n < 2 || n > 20 || len(r.Texts) != n || len(r.Scores) != n || len(r.Raw) != n || len(r.Ranks) != n {
				t.Fatalf("row %s: list lengths %d/%d/%d/%d/%d", r.QID, n, len(r.Texts), len(r.Scores), len(r.Raw), len(r.Ranks))
			}
			if r.DocIDs[0] != r.Source {
				t.Errorf("row %s: source %s is not first (%v)", r.QID, r.Source, r.DocIDs)
			}
			for j := range r.Scores {
				if r.Scores[j] < 0 || r.Scores[j] > 1 {
					t.Errorf("row %s: score %v outside [0,1]", r.QID, r.Scores[j])
				}
				if j > 0 && (r.Raw[j] > r.Raw[j-1] || r.Scores[j] > r.Scores[j-1]) {
					t.Errorf("row %s: scores not descending: %v", r.QID, r.Raw)
				}
			}
			if !strings.HasPrefix(r.QID, r.Source+":"+r.Type+":") {
				t.Errorf("row %s: qid does not name source %s and type %s", r.QID, r.Source, r.Type)
			}
		}
		if split == "train" {
			train = rows
		} else {
			dev = rows
		}
	}
	seen := map[string]string{}
	for _, r := range append(slices.Clone(train), dev...) {
		if s, ok := seen[r.Source]; ok && s != r.Split {
			t.Errorf("passage %s is in both splits", r.Source)
		}
		seen[r.Source] = r.Split
	}
	return train, dev
}

func TestRunAgainstFakeServers(t *testing.T) {
	for _, api := range []string{"tei", "cohere", "vllm-score"} {
		t.Run(api, func(t *testing.T) {
			out := t.TempDir()
			llm, rr, args := fakeArgs(t, api, out)
			args = append(args, "--teacher-batch", "50") // above TEI's 32: the client must shrink its batches
			code, msg := synthq(t, context.Background(), args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, msg)
			}
			train, dev := checkOutput(t, out)
			if len(train) < 20 || len(dev) == 0 {
				t.Fatalf("train %d rows, dev %d: want a real dataset", len(train), len(dev))
			}
			if llm.Counter.Total() != 240 {
				t.Errorf("LLM got %d requests, want 40 passages × 6 types = 240", llm.Counter.Total())
			}
			if rr.Pairs.Load() == 0 {
				t.Error("teacher scored nothing")
			}
			var m struct {
				Generator string                         `json:"generator"`
				Teacher   string                         `json:"teacher"`
				Rows      map[string]int                 `json:"rows"`
				Stages    map[string]pipeline.StageStats `json:"stages"`
			}
			b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.Rows["train"] != len(train) || m.Rows["dev"] != len(dev) || m.Generator != model || !strings.HasPrefix(m.Teacher, api+":") {
				t.Errorf("manifest = %+v", m)
			}
			if m.Stages["filter"].Counts["kept"] == 0 || m.Stages["generate"].Counts["prompt_tokens"] == 0 {
				t.Errorf("manifest stage counts missing: %+v", m.Stages)
			}
			// Re-running sends nothing and exports the same bytes.
			before := map[string][]byte{}
			for _, f := range []string{"train.arrow", "dev.arrow", "train.parquet", "dev.parquet"} {
				before[f], _ = os.ReadFile(filepath.Join(out, f))
			}
			llmN, rrN := llm.Counter.Total(), rr.Counter.Total()
			if code, msg := synthq(t, context.Background(), args...); code != 0 {
				t.Fatalf("re-run exit %d: %s", code, msg)
			}
			if llm.Counter.Total() != llmN || rr.Counter.Total() != rrN {
				t.Errorf("re-run sent %d LLM and %d teacher requests, want 0", llm.Counter.Total()-llmN, rr.Counter.Total()-rrN)
			}
			for f, b := range before {
				if a, _ := os.ReadFile(filepath.Join(out, f)); !bytes.Equal(a, b) {
					t.Errorf("re-run changed %s", f)
				}
			}
		})
	}
}

func TestResumeAfterInterruptIsByteIdentical(t *testing.T) {
	ref := t.TempDir()
	_, _, refArgs := fakeArgs(t, "tei", ref)
	if code, msg := synthq(t, context.Background(), refArgs...); code != 0 {
		t.Fatalf("reference run: exit %d: %s", code, msg)
	}

	for _, stopAt := range []int64{1, 37, 150, 239} {
		out := t.TempDir()
		llm, rr, args := fakeArgs(t, "tei", out)
		// A graceful stop, as at SIGINT: no new requests, those in flight
		// (LLM and teacher, which work side by side) answer and are stored.
		stop := pipeline.NewStopper(context.Background())
		llm.OnServe = func(n int64) {
			if n == stopAt {
				stop.Stop(io.Discard)
			}
		}
		code, msg := synthq(t, stop.Hard, args...)
		stop.Close()
		if code != exitInterrupted || !strings.Contains(msg, "interrupted; re-run the same command to resume") {
			t.Fatalf("stop at %d: exit %d, want 130 with the resume hint: %s", stopAt, code, msg)
		}
		first := llm.Counter.Total()
		// OnServe stays: a request still in flight at the interrupt may be
		// answered now and read it (setting it to nil would race), and the
		// served count never equals stopAt again.
		if code, msg := synthq(t, context.Background(), args...); code != 0 {
			t.Fatalf("resume: exit %d: %s", code, msg)
		}
		// Requests in flight at the stop were answered and stored: none is
		// sent again.
		if rep := llm.Counter.Repeated(); rep != 0 {
			t.Errorf("stop at %d: %d LLM requests repeated after resume, want 0: in-flight answers are kept", stopAt, rep)
		}
		if got := llm.Counter.Total() - int64(llm.Counter.Repeated()); got != 240 {
			t.Errorf("stop at %d: %d distinct LLM requests (first run %d), want 240", stopAt, got, first)
		}
		if rr.Counter.Repeated() != 0 {
			t.Errorf("stop at %d: teacher requests repeated: %d", stopAt, rr.Counter.Repeated())
		}
		for _, f := range []string{"train.arrow", "dev.arrow", "train.parquet", "dev.parquet"} {
			a, _ := os.ReadFile(filepath.Join(ref, f))
			b, _ := os.ReadFile(filepath.Join(out, f))
			if len(a) == 0 || !bytes.Equal(a, b) {
				t.Errorf("stop at %d: %s differs from the uninterrupted run (%d vs %d bytes)", stopAt, f, len(a), len(b))
			}
		}
	}
}

func TestStoreHeldByAnotherProcess(t *testing.T) {
	out := t.TempDir()
	st, err := pipeline.OpenStore(filepath.Join(out, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	code, msg := synthq(t, context.Background(), "run", "--offline", "--corpus", corpus, "--out", out, "--quiet")
	if code != exitError || !strings.Contains(msg, filepath.Join(out, "store")) || !strings.Contains(msg, "another synthq process holds it") {
		t.Fatalf("exit %d, message %q: want 1 naming the store and the other process", code, msg)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %s: should fail at once", time.Since(start))
	}
}

func TestNoServerFailsFastWithAdvice(t *testing.T) {
	out := t.TempDir()
	start := time.Now()
	code, msg := synthq(t, context.Background(), "run", "--corpus", corpus, "--out", out, "--quiet",
		"--llm-url", "http://127.0.0.1:1/v1", "--teacher-url", "http://127.0.0.1:1")
	if code != exitError {
		t.Fatalf("exit %d: %s", code, msg)
	}
	for _, want := range []string{"http://127.0.0.1:1/v1/models", "vllm serve", "ollama", "text-embeddings-router", "--offline"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %s: should fail fast", time.Since(start))
	}
	code, msg = synthq(t, context.Background(), "run", "--corpus", corpus, "--out", out, "--quiet")
	if code != exitError || !strings.Contains(msg, "--llm-url and --teacher-url required") || !strings.Contains(msg, "--offline") {
		t.Errorf("without URLs: exit %d: %s", code, msg)
	}
}

func TestSecretsNeverWritten(t *testing.T) {
	const llmKey, teacherKey, embedKey = "sk-llm-SECRET-7f3a", "tk-teacher-SECRET-91bc", "ek-embed-SECRET-42aa"
	out := t.TempDir()
	llm, _, args := fakeArgs(t, "cohere", out)
	llm.APIKey = llmKey
	emb := fakes.NewEmbedder("vllm", "e5", 16)
	emb.APIKey = embedKey
	defer emb.Close()
	t.Setenv("SYNTHQ_LLM_API_KEY", llmKey)
	code, msg := synthq(t, context.Background(), append(args, "--teacher-api-key", teacherKey, "--embed-api-key", embedKey,
		"--retriever", "bm25,dense", "--embed-url", emb.URL(), "--embed-model", "e5",
		"--llm-extra", `{"top_k":20,"api_key":"xk-extra-SECRET-55"}`)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	// The stored config shows the extra key redacted; the request
	// fingerprints inspect rebuilds from it are the run's: it finds the
	// answer.
	code, msg = synthq(t, context.Background(), "inspect", "--store", filepath.Join(out, "store"), "--json", "kb001:questions:0")
	var story struct{ Answer *dataset.Answer }
	if code != 0 || json.Unmarshal([]byte(msg), &story) != nil || story.Answer == nil {
		t.Errorf("inspect after a run with a secret --llm-extra key: exit %d, no answer: %s", code, msg)
	}
	if strings.Contains(msg, "SECRET") {
		t.Errorf("output mentions a key: %s", msg)
	}
	filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("SECRET")) {
			t.Errorf("%s contains an API key", p)
		}
		return nil
	})
	// A wrong key stops the run with advice, not a pile of failed items.
	llm.APIKey = "other"
	code, msg = synthq(t, context.Background(), append(args, "--query-types", "questions", "--temperature", "0.5")...)
	if code != exitError || !strings.Contains(msg, "SYNTHQ_LLM_API_KEY") || strings.Contains(msg, "SECRET") {
		t.Errorf("wrong key: exit %d: %s", code, msg)
	}
}

// storedConfig reads the run settings a run recorded in OUT/store.
func storedConfig(t *testing.T, out string) pipeline.Config {
	t.Helper()
	st, err := pipeline.OpenStore(filepath.Join(out, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var cfg pipeline.Config
	if _, err := st.GetJSON(dataset.MetaConfig, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestFlagEnvFilePrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "synthq.yaml")
	os.WriteFile(cfgFile, []byte("list-size: 7\nmin-candidates: 3\ncandidates: 30\nquery-types: questions,titles\n"), 0o644)
	listSize := func(out string) int {
		cfg := storedConfig(t, out)
		if cfg.Candidates != 30 || !slices.Equal(cfg.QueryTypes, []string{"questions", "titles"}) {
			t.Errorf("file values not applied: %+v", cfg)
		}
		return cfg.ListSize
	}
	base := []string{"run", "--offline", "--corpus", corpus, "--quiet", "--config", cfgFile}
	cases := []struct {
		name string
		env  string
		flag []string
		want int
	}{
		{"file", "", nil, 7},
		{"env over file", "9", nil, 9},
		{"flag over env", "9", []string{"--list-size", "5"}, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("SYNTHQ_LIST_SIZE", tc.env)
			}
			out := t.TempDir()
			code, msg := synthq(t, context.Background(), append(append(base, "--out", out), tc.flag...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, msg)
			}
			if got := listSize(out); got != tc.want {
				t.Errorf("list-size = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestOfflineRunAndExportCommand(t *testing.T) {
	out := t.TempDir()
	code, msg := synthq(t, context.Background(), "run", "--offline", "--corpus", corpus, "--out", out, "--quiet", "--min-candidates", "5", "--min-top-percentile", "10")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	schema, _ := readArrow(t, filepath.Join(out, "train.arrow"))
	for k, want := range map[string]string{"generator": "offline", "teacher": "lexical"} {
		if v, _ := schema.Metadata().GetValue(k); v != want {
			t.Errorf("schema metadata %s = %q, want %q", k, v, want)
		}
	}
	train, _ := checkOutput(t, out)
	// Re-export with a shorter list and another split, from the store alone.
	out2 := t.TempDir()
	code, msg = synthq(t, context.Background(), "export", "--store", filepath.Join(out, "store"), "--out", out2, "--list-size", "4", "--quiet")
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, msg)
	}
	train2, _ := checkOutput(t, out2)
	var m struct {
		Config pipeline.Config `json:"config"`
	}
	b, _ := os.ReadFile(filepath.Join(out2, "manifest.json"))
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.ListSize != 4 || m.Config.MinTopPercentile != 10 {
		t.Errorf("export settings: list-size %d, min-top-percentile %v; want 4 (given) and 10 (the run's)", m.Config.ListSize, m.Config.MinTopPercentile)
	}
	if len(train2) != len(train) {
		t.Errorf("export kept %d train rows, run %d", len(train2), len(train))
	}
	for _, r := range train2 {
		if len(r.DocIDs) > 4 {
			t.Fatalf("row %s has %d passages, want ≤ 4", r.QID, len(r.DocIDs))
		}
	}
	code, msg = synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"))
	if code != 0 || !strings.Contains(msg, "generate") || !strings.Contains(msg, "kept") {
		t.Errorf("stats: exit %d: %s", code, msg)
	}
}
