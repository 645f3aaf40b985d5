package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/pipeline"
)

// slurmReady skips the test unless a Slurm cluster answers (sinfo), or fails
// it with SYNTHQ_SLURM=1 (as .ci/run sets after `eval "$(bash .ci/slurm.sh)"`).
func slurmReady(t *testing.T) {
	t.Helper()
	must := os.Getenv("SYNTHQ_SLURM") == "1"
	os.Getenv("SLURM_CONF") // read here so that go test's cache keys on the cluster's configuration
	out, err := exec.Command("sinfo", "-h", "-o", "%t").CombinedOutput()
	if err == nil && strings.TrimSpace(string(out)) != "" {
		return
	}
	msg := fmt.Sprintf("no Slurm cluster answers (sinfo: %v %s): start one with eval \"$(bash .ci/slurm.sh)\"", err, strings.TrimSpace(string(out)))
	if must {
		t.Fatal(msg + " (SYNTHQ_SLURM=1)")
	}
	t.Skip(msg)
}

// slurmJob is the state of a job (or of every task of an array) as scontrol
// sees it: "PENDING", "RUNNING", "COMPLETED", "CANCELLED", … and the reason.
func slurmJob(t *testing.T, id string) (states []string, reason string) {
	t.Helper()
	out, err := exec.Command("scontrol", "show", "job", "-o", id).CombinedOutput()
	if err != nil {
		t.Fatalf("scontrol show job %s: %v: %s", id, err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "JobState="); ok {
				states = append(states, v)
			}
			if v, ok := strings.CutPrefix(f, "Reason="); ok {
				reason = v
			}
		}
	}
	return states, reason
}

// waitFor polls cond every 200 ms until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func allAre(states []string, want string) bool {
	for _, s := range states {
		if s != want {
			return false
		}
	}
	return len(states) > 0
}

// A whole job on a real Slurm: deploy/slurm/submit.sh submits prepare, a
// 4-task array of shards (--shard auto/4) and the merge (afterok). One task
// is cancelled mid-run (scancel) and resubmitted alone with the same
// script; it resumes from its store. The merge is byte-identical to one
// machine, the fake embedder saw each of the corpus's passages once for the
// whole job, and no LLM request was asked twice.
func TestSlurmJob(t *testing.T) {
	slurmReady(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	// Jobs run as their submitter (root here) on this machine and must read
	// the binary and the work folder: a temp folder of the test.
	dir := t.TempDir()
	bin := filepath.Join(dir, "synthq")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	absCorpus, _ := filepath.Abs(corpus)

	// Two sets of fakes: one for the single-machine reference, one for the
	// job, so the job's request counts are its own.
	type servers struct {
		llm  *fakes.LLM
		rr   *fakes.Reranker
		emb  *fakes.Embedder
		seen *passageInputs
	}
	start := func(llmLatency time.Duration) servers {
		s := servers{llm: fakes.NewLLM(model, func(f *fakes.LLM) { f.Latency = llmLatency }),
			rr:   fakes.NewReranker("tei", "BAAI/bge-reranker-v2-m3"),
			emb:  fakes.NewEmbedder("vllm", "e5", 32),
			seen: &passageInputs{passages: map[string]int{}}}
		s.emb.Served = s.seen.served
		t.Cleanup(s.llm.Close)
		t.Cleanup(s.rr.Close)
		t.Cleanup(s.emb.Close)
		return s
	}
	yaml := func(s servers) string {
		return fmt.Sprintf(`corpus: %q
llm-url: [%q]
llm-model: %q
teacher-url: [%q]
teacher-api: tei
teacher-model: BAAI/bge-reranker-v2-m3
retriever: bm25,dense
embed-url: [%q]
embed-model: [e5]
query-prefix: ["query: "]
passage-prefix: ["passage: "]
embed-batch: 8
min-candidates: 5
concurrency: "2"
dev-fraction: 0.2
seed: 7
grace: 3s
tolerate-failed: 0.01
quiet: true
`, absCorpus, s.llm.URL(), model, s.rr.URL, s.emb.URL())
	}
	ref := start(0)
	refCfg := filepath.Join(dir, "ref.yaml")
	if err := os.WriteFile(refCfg, []byte(yaml(ref)), 0o644); err != nil {
		t.Fatal(err)
	}
	refOut := filepath.Join(dir, "single")
	if code, msg := synthq(t, context.Background(), "run", "--config", refCfg, "--out", refOut); code != 0 {
		t.Fatalf("single machine: exit %d: %s", code, msg)
	}
	corpusPassages, _, _ := ref.seen.snapshot()

	// The job: answers take 150 ms, so a shard runs for seconds.
	job := start(150 * time.Millisecond)
	work := filepath.Join(dir, "work")
	jobCfg := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(jobCfg, []byte(yaml(job)), 0o644); err != nil {
		t.Fatal(err)
	}
	var envv []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SYNTHQ_") {
			envv = append(envv, kv) // the CI's SYNTHQ_* switches are no flags of the jobs
		}
	}
	envv = append(envv, "SYNTHQ_WORK="+work, "SYNTHQ_CONFIG="+jobCfg, "SYNTHQ_SHARDS=4", "SYNTHQ="+bin)
	slurm := filepath.Join(root, "deploy", "slurm")
	sbatch := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = envv
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	ids := strings.Fields(sbatch("bash", filepath.Join(slurm, "submit.sh")))
	if len(ids) != 3 {
		t.Fatalf("submit.sh printed %q, want three job ids", ids)
	}
	prep, array, merge := ids[0], ids[1], ids[2]
	t.Cleanup(func() { exec.Command("scancel", prep, array, merge).Run() })
	logs := func() string {
		var b strings.Builder
		files, _ := filepath.Glob(filepath.Join(work, "synthq-*.out"))
		for _, f := range files {
			data, _ := os.ReadFile(f)
			fmt.Fprintf(&b, "== %s\n%s", filepath.Base(f), data)
		}
		return b.String()
	}

	// Cancel task 1 once it has stored some answers.
	task1 := array + "_1"
	store1 := filepath.Join(work, "shard1", "store")
	waitFor(t, "shard 1 to store answers\n"+logs(), 3*time.Minute, func() bool {
		p, err := pipeline.ReadProgressFile(store1)
		return err == nil && p.Stages["generate"].Done >= 5
	})
	if out, err := exec.Command("scancel", task1).CombinedOutput(); err != nil {
		t.Fatalf("scancel %s: %v: %s", task1, err, out)
	}
	waitFor(t, "the other shards to finish and the merge to wait for ever\n"+logs(), 3*time.Minute, func() bool {
		_, reason := slurmJob(t, merge)
		st, _ := slurmJob(t, array)
		done := 0
		for _, s := range st {
			if s == "COMPLETED" {
				done++
			}
		}
		return reason == "DependencyNeverSatisfied" && done == 3
	})
	if st, _ := slurmJob(t, task1); !allAre(st, "CANCELLED") {
		t.Fatalf("task 1 after scancel: %v", st)
	}
	if st, _ := slurmJob(t, merge); !allAre(st, "PENDING") {
		t.Fatalf("the merge ran with a shard cancelled: %v", st)
	}
	// The shard's own view while one is missing: stats --merge reads the
	// progress files, with no lock.
	var stores []string
	for i := range 4 {
		stores = append(stores, filepath.Join(work, fmt.Sprintf("shard%d", i), "store"))
	}
	code, msg := synthq(t, context.Background(), append([]string{"stats", "--merge"}, stores...)...)
	if code != 0 || !strings.Contains(msg, "3 done") || !strings.Contains(msg, "1/4    interrupted") {
		t.Errorf("stats --merge after the cancel: exit %d:\n%s", code, msg)
	}

	// Resubmit task 1 alone with the same script; point the merge at it.
	resub := sbatch("sbatch", "--parsable", "--chdir="+work, "--export=ALL", "--array=1", filepath.Join(slurm, "shards.sbatch"))
	t.Cleanup(func() { exec.Command("scancel", resub).Run() })
	sbatch("scontrol", "update", "JobId="+merge, "Dependency=afterok:"+resub)
	waitFor(t, "the merge to complete\n"+logs(), 3*time.Minute, func() bool {
		st, _ := slurmJob(t, merge)
		if len(st) > 0 && st[0] != "PENDING" && st[0] != "RUNNING" && st[0] != "COMPLETED" {
			t.Fatalf("merge job %s: %v\n%s", merge, st, logs())
		}
		return allAre(st, "COMPLETED")
	})
	sameFiles(t, refOut, filepath.Join(work, "merged"))

	// The corpus was embedded once for the whole job: by prepare.
	d, n, q := job.seen.snapshot()
	if d != corpusPassages || n != corpusPassages {
		t.Errorf("the job embedded %d distinct passages in %d inputs; want each of the %d passages once", d, n, corpusPassages)
	}
	if q == 0 {
		t.Errorf("the shards embedded no query")
	}
	// The resubmitted task resumed: no LLM request was asked twice (the
	// cancelled task stored its answers in flight within --grace), and the
	// job asked exactly what one machine asked.
	if r := job.llm.Counter.Repeated(); r != 0 {
		t.Errorf("%d LLM requests were asked again after the resubmission", r)
	}
	if got, want := job.llm.Counter.Total(), ref.llm.Counter.Total(); got != want {
		t.Errorf("the job sent %d LLM requests, one machine %d", got, want)
	}
	code, msg = synthq(t, context.Background(), append([]string{"stats", "--merge"}, stores...)...)
	if code != 0 || !strings.Contains(msg, "4 done") {
		t.Errorf("stats --merge at the end: exit %d:\n%s", code, msg)
	}
	t.Logf("job %s/%s/%s (resubmitted %s):\n%s", prep, array, merge, resub, msg)
}
