package pipeline

import (
	"strings"
	"testing"
)

func TestResolveShard(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		env        map[string]string
		want, err  string
	}{
		{name: "explicit", spec: "2/4", want: "2/4"},
		{name: "none", spec: "", want: ""},
		{name: "slurm array 0-3", spec: "auto", want: "2/4",
			env: map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "3", "SLURM_ARRAY_TASK_COUNT": "4"}},
		{name: "slurm array 1-8", spec: "auto", want: "0/8",
			env: map[string]string{"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8", "SLURM_ARRAY_TASK_COUNT": "8"}},
		{name: "slurm task resubmitted alone", spec: "auto", err: "resubmitted alone",
			env: map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "2", "SLURM_ARRAY_TASK_MAX": "2", "SLURM_ARRAY_TASK_COUNT": "1"}},
		{name: "slurm sparse array", spec: "auto", err: "sparse",
			env: map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "5", "SLURM_ARRAY_TASK_COUNT": "3"}},
		{name: "slurm resubmitted task with auto/N", spec: "auto/4", want: "2/4",
			env: map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "2", "SLURM_ARRAY_TASK_MAX": "2", "SLURM_ARRAY_TASK_COUNT": "1"}},
		{name: "slurm index past N", spec: "auto/4", err: "SLURM_ARRAY_TASK_ID=4 gives shard 4, outside 0…3",
			env: map[string]string{"SLURM_ARRAY_TASK_ID": "4"}},
		{name: "kubernetes", spec: "auto/8", want: "5/8", env: map[string]string{"JOB_COMPLETION_INDEX": "5"}},
		{name: "kubernetes without N", spec: "auto", err: "give --shard auto/N with N = spec.completions",
			env: map[string]string{"JOB_COMPLETION_INDEX": "5"}},
		{name: "no scheduler", spec: "auto/4", err: "neither SLURM_ARRAY_TASK_ID"},
		{name: "bad number", spec: "auto/4", err: `JOB_COMPLETION_INDEX="x" is not a whole number`, env: map[string]string{"JOB_COMPLETION_INDEX": "x"}},
		{name: "bad N", spec: "auto/0", err: "want auto or auto/N"},
		{name: "bad form", spec: "automatic", err: "want i/N, auto or auto/N"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveShard(tc.spec, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ResolveShard(%q) = %q, %v; want an error containing %q", tc.spec, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ResolveShard(%q) = %q, %v; want %q", tc.spec, got, err, tc.want)
			}
		})
	}
}
