package pipeline

import (
	"fmt"
	"strconv"
	"strings"
)

// ResolveShard turns a --shard value into "i/N". "i/N" and "" are returned
// as they are. "auto" and "auto/N" take the index from the scheduler that
// started the process, read through getenv:
//
//   - Slurm job arrays: SLURM_ARRAY_TASK_ID. With "auto", the shard is
//     SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT
//     (an array 1-8 is shards 0/8 … 7/8); the array must be contiguous
//     (MAX - MIN + 1 = COUNT), as a sparse one (--array=0,2,5) or a task
//     resubmitted alone (--array=2, whose COUNT is 1) cannot say how many
//     shards the job has (a one-task array not numbered 0 is refused as
//     such; task 0 resubmitted alone cannot be told from a one-shard job,
//     but its store, begun as 0/N, refuses to go on as 0/1). With "auto/N", the shard is SLURM_ARRAY_TASK_ID of
//     N: the form a recipe should use, since a task resubmitted alone keeps
//     its index.
//   - Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX of N. Kubernetes does
//     not tell a pod the job's completions, so N must be given: "auto/N"
//     with N = spec.completions.
//
// An index outside 0 … N-1, or no scheduler variable at all, is an error
// naming what was read.
func ResolveShard(spec string, getenv func(string) string) (string, error) {
	rest, ok := strings.CutPrefix(spec, "auto")
	if !ok {
		return spec, nil
	}
	n := uint64(0)
	switch {
	case rest == "":
	case strings.HasPrefix(rest, "/"):
		v, err := strconv.ParseUint(rest[1:], 10, 32)
		if err != nil || v == 0 {
			return "", fmt.Errorf("--shard %q: want auto or auto/N with N the number of shards (at least 1)", spec)
		}
		n = v
	default:
		return "", fmt.Errorf("--shard %q: want i/N, auto or auto/N", spec)
	}
	num := func(name string) (uint64, bool, error) {
		s := strings.TrimSpace(getenv(name))
		if s == "" {
			return 0, false, nil
		}
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return 0, true, fmt.Errorf("--shard %s: %s=%q is not a whole number", spec, name, s)
		}
		return v, true, nil
	}
	check := func(i uint64, from string) (string, error) {
		if i >= n {
			return "", fmt.Errorf("--shard %s: %s gives shard %d, outside 0…%d (number the tasks from 0, e.g. sbatch --array=0-%d)", spec, from, i, n-1, n-1)
		}
		return fmt.Sprintf("%d/%d", i, n), nil
	}
	if id, ok, err := num("SLURM_ARRAY_TASK_ID"); err != nil {
		return "", err
	} else if ok {
		if n > 0 {
			return check(id, fmt.Sprintf("SLURM_ARRAY_TASK_ID=%d", id))
		}
		lo, okLo, err1 := num("SLURM_ARRAY_TASK_MIN")
		hi, okHi, err2 := num("SLURM_ARRAY_TASK_MAX")
		count, okCount, err3 := num("SLURM_ARRAY_TASK_COUNT")
		for _, err := range []error{err1, err2, err3} {
			if err != nil {
				return "", err
			}
		}
		if !okLo || !okHi || !okCount {
			return "", fmt.Errorf("--shard auto: SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_MIN, _MAX and _COUNT; give --shard auto/N")
		}
		if hi < lo || hi-lo+1 != count || (count == 1 && lo != 0) {
			return "", fmt.Errorf("--shard auto: the array %d-%d has %d tasks (a sparse array, or a task resubmitted alone), so the number of shards is unknown; give --shard auto/N", lo, hi, count)
		}
		n = count
		return check(id-lo, fmt.Sprintf("SLURM_ARRAY_TASK_ID=%d - SLURM_ARRAY_TASK_MIN=%d", id, lo))
	}
	if id, ok, err := num("JOB_COMPLETION_INDEX"); err != nil {
		return "", err
	} else if ok {
		if n == 0 {
			return "", fmt.Errorf("--shard auto: JOB_COMPLETION_INDEX=%d is set (a Kubernetes Indexed Job), but Kubernetes does not tell a pod how many completions the job has; give --shard auto/N with N = spec.completions", id)
		}
		return check(id, fmt.Sprintf("JOB_COMPLETION_INDEX=%d", id))
	}
	return "", fmt.Errorf("--shard %s: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; give --shard i/N", spec)
}
