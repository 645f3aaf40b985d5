package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The Kubernetes recipes decode strictly into the k8s.io/api types (a field
// Kubernetes does not know, or one of the wrong type, fails), and hold
// together: the shards' Indexed Job retries per index with restartPolicy
// Never, its --shard auto/N matches spec.completions, the merge reads every
// shard's store, and every Job mounts the same claim and the prepared
// folder prepare writes. It does not prove that a cluster admits them (the
// API server's validation, admission, quotas, the image) nor that they run.
func TestKubernetesRecipes(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "k8s", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	job := func(name string) batchv1.Job {
		var j batchv1.Job
		if err := yaml.UnmarshalStrict(read(name), &j); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if j.Kind != "Job" || j.APIVersion != "batch/v1" {
			t.Fatalf("%s: %s %s, want batch/v1 Job", name, j.APIVersion, j.Kind)
		}
		return j
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(read("config.yaml"), &cm); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if cm.Kind != "ConfigMap" || cm.Data["job.yaml"] == "" {
		t.Fatalf("config.yaml: kind %q, job.yaml %q", cm.Kind, cm.Data["job.yaml"])
	}
	// The settings are a synthq --config file: every key a flag of run.
	cfgFile := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(cfgFile, []byte(cm.Data["job.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cliRun(t, "run", "--config", cfgFile, "--dry-run", "--out", t.TempDir()); strings.Contains(errs, "unknown key") || strings.Contains(errs, "want ") {
		t.Errorf("config.yaml's job.yaml is not a valid --config file: exit %d: %s", code, errs)
	}

	prep, shards, merge := job("prepare.yaml"), job("shards.yaml"), job("merge.yaml")
	// A field under the wrong name is refused (the check can fail).
	bad := bytes.Replace(read("shards.yaml"), []byte("\n  backoffLimitPerIndex:"), []byte("\n  backoffLimitPerIndx:"), 1)
	if err := yaml.UnmarshalStrict(bad, &batchv1.Job{}); err == nil {
		t.Errorf("a misspelt field decoded without error")
	}

	s := shards.Spec
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("shards: completionMode %v, want Indexed", s.CompletionMode)
	}
	if s.Completions == nil || s.BackoffLimitPerIndex == nil || *s.BackoffLimitPerIndex < 1 {
		t.Fatalf("shards: completions %v, backoffLimitPerIndex %v", s.Completions, s.BackoffLimitPerIndex)
	}
	if p := s.Template.Spec.RestartPolicy; p != corev1.RestartPolicyNever {
		t.Errorf("shards: restartPolicy %q; backoffLimitPerIndex needs Never", p)
	}
	// Exit 3 (more failed items than --tolerate-failed) fails the index at
	// once, not retried: a retry re-reports the same recorded items. The
	// ConfigMap sets the share, so a few failed items exit 0.
	failIndex3 := false
	if s.PodFailurePolicy != nil {
		for _, r := range s.PodFailurePolicy.Rules {
			if e := r.OnExitCodes; e != nil && r.Action == batchv1.PodFailurePolicyActionFailIndex &&
				e.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && slices.Contains(e.Values, exitFailedItems) &&
				e.ContainerName != nil && *e.ContainerName == s.Template.Spec.Containers[0].Name {
				failIndex3 = true
			}
		}
	}
	if !failIndex3 {
		t.Errorf("shards: no podFailurePolicy rule failing the index on exit %d: %+v", exitFailedItems, s.PodFailurePolicy)
	}
	var settings struct {
		TolerateFailed float64 `json:"tolerate-failed"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["job.yaml"]), &settings); err != nil || settings.TolerateFailed <= 0 {
		t.Errorf("config.yaml: tolerate-failed %g (%v); want a share above 0, so a few failed items do not fail a shard", settings.TolerateFailed, err)
	}
	n := int(*s.Completions)
	args := strings.Join(s.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--shard auto/" + strconv.Itoa(n), "--prepared /work/prep", "--out /work/shard$JOB_COMPLETION_INDEX"} {
		if !strings.Contains(args, want) {
			t.Errorf("shards: args %q lack %q", args, want)
		}
	}
	if !strings.Contains(strings.Join(prep.Spec.Template.Spec.Containers[0].Args, " "), "prepare --out /work/prep") {
		t.Errorf("prepare: args %q do not write /work/prep", prep.Spec.Template.Spec.Containers[0].Args)
	}
	margs := strings.Join(merge.Spec.Template.Spec.Containers[0].Args, " ")
	for i := range n {
		if !strings.Contains(margs, "/work/shard"+strconv.Itoa(i)+"/store") {
			t.Errorf("merge: args lack shard %d's store: %q", i, margs)
		}
	}
	for name, j := range map[string]batchv1.Job{"prepare": prep, "shards": shards, "merge": merge} {
		claim := ""
		for _, v := range j.Spec.Template.Spec.Volumes {
			if v.Name == "work" && v.PersistentVolumeClaim != nil {
				claim = v.PersistentVolumeClaim.ClaimName
			}
		}
		if claim != "synthq-work" {
			t.Errorf("%s: work volume claim %q, want synthq-work", name, claim)
		}
	}
}

// The Slurm recipe treats synthq's exit status as the Kubernetes one does:
// shards.sbatch passes it through, so exit 3 (more failed items than
// --tolerate-failed) fails the array task and the merge (afterok) waits,
// exit 0 lets it run; the shell itself adds no status of its own.
func TestSlurmShardExitStatus(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "deploy", "slurm", "shards.sbatch"))
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{0, exitFailedItems, exitError} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			dir := t.TempDir()
			fake := filepath.Join(dir, "synthq")
			// The fake synthq records its arguments and exits with code.
			body := fmt.Sprintf("#!/bin/sh\necho \"$@\" > %q\nexit %d\n", filepath.Join(dir, "args"), code)
			if err := os.WriteFile(fake, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bash, script)
			cmd.Env = append(os.Environ(), "SYNTHQ="+fake, "SYNTHQ_WORK="+dir, "SYNTHQ_SHARDS=4", "SLURM_ARRAY_TASK_ID=2")
			out, err := cmd.CombinedOutput()
			got := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				got = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if got != code {
				t.Errorf("synthq exit %d: shards.sbatch exit %d, want %d: %s", code, got, code, out)
			}
			args, _ := os.ReadFile(filepath.Join(dir, "args"))
			if want := "run --prepared " + dir + "/prep --shard auto/4 --out " + dir + "/shard2"; strings.TrimSpace(string(args)) != want {
				t.Errorf("shards.sbatch ran synthq %q, want %q", args, want)
			}
		})
	}
}
