package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/synthq/synthq/inspect"
	"github.com/synthq/synthq/pipeline"
)

// staleAfter is how long a running shard's progress file may go without an
// update before stats calls it stale (its process likely killed outright:
// SIGKILL, a lost node, a preempted pod).
const staleAfter = time.Minute

// shardView is one store's line in `synthq stats --merge`.
type shardView struct {
	Store    string                `json:"store"`
	Shard    string                `json:"shard,omitempty"`
	State    string                `json:"state"` // a pipeline.State*, "stale" or "no progress file"
	Stage    string                `json:"stage,omitempty"`
	Done     int64                 `json:"done,omitempty"`
	Total    int64                 `json:"total,omitempty"`
	Updated  time.Time             `json:"updated,omitempty"`
	Error    string                `json:"error,omitempty"`
	Progress *pipeline.RunProgress `json:"progress,omitempty"`
}

// jobView reads the progress file of each store (no store is opened, no
// lock taken, so the shards may be running) and sums the job's funnel:
// passages are the largest count a shard saw (every shard reads the whole
// corpus), everything after is summed over the shards.
func jobView(paths []string, now time.Time) ([]shardView, []inspect.FunnelStep) {
	var views []shardView
	sum := map[string]pipeline.StageStats{}
	for _, p := range paths {
		v := shardView{Store: p}
		rp, err := pipeline.ReadProgressFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			v.State, v.Error = "no progress file", "not started yet, or made by a synthq without progress files"
			views = append(views, v)
			continue
		}
		if err != nil {
			v.State, v.Error = "no progress file", err.Error()
			views = append(views, v)
			continue
		}
		v.Shard, v.State, v.Updated, v.Error, v.Progress = rp.Shard, rp.State, rp.Updated, rp.Error, &rp
		if v.State == pipeline.StateRunning && now.Sub(rp.Updated) > staleAfter {
			v.State = "stale"
		}
		// The stage at work: the first in flow order whose bar has not
		// ended, else the last one started.
		for _, name := range stageOrder {
			if b, ok := rp.Stages[name]; ok {
				v.Stage, v.Done, v.Total = name, b.Done, b.Total
				if !b.Ended {
					break
				}
			}
		}
		for stage, counts := range rp.Counts {
			agg := sum[stage]
			if agg.Counts == nil {
				agg.Counts = map[string]int64{}
			}
			for k, n := range counts {
				if stage == "corpus" {
					agg.Counts[k] = max(agg.Counts[k], n)
				} else {
					agg.Counts[k] += n
				}
			}
			sum[stage] = agg
		}
		views = append(views, v)
	}
	slices.SortStableFunc(views, func(a, b shardView) int { return shardIndex(a.Shard) - shardIndex(b.Shard) })
	return views, inspect.Funnel(sum)
}

func shardIndex(s string) int {
	if s == "" {
		return 1 << 30
	}
	i, _, err := (&pipeline.Config{Shard: s}).ShardOf()
	if err != nil {
		return 1 << 30
	}
	return int(i)
}

// printJob prints the job view: one line per shard, then the funnel.
func printJob(w io.Writer, views []shardView, funnel []inspect.FunnelStep, now time.Time, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"shards": views, "funnel": funnel})
	}
	counts := map[string]int{}
	for _, v := range views {
		counts[v.State]++
	}
	var states []string
	for _, k := range pipeline.SortedKeys(counts) {
		states = append(states, fmt.Sprintf("%d %s", counts[k], k))
	}
	fmt.Fprintf(w, "job: %d stores: %s\n", len(views), strings.Join(states, ", "))
	fmt.Fprintf(w, "  %-6s %-12s %-9s %-22s %-10s %s\n", "shard", "state", "stage", "progress", "updated", "store")
	for _, v := range views {
		prog := ""
		switch {
		case v.Total > 0:
			prog = fmt.Sprintf("%d/%d %5.1f%%", v.Done, v.Total, 100*float64(v.Done)/float64(v.Total))
		case v.Stage != "":
			prog = fmt.Sprint(v.Done)
		}
		upd := "-"
		if !v.Updated.IsZero() {
			upd = now.Sub(v.Updated).Round(time.Second).String() + " ago"
		}
		shard := v.Shard
		if shard == "" {
			shard = "-"
		}
		fmt.Fprintf(w, "  %-6s %-12s %-9s %-22s %-10s %s\n", shard, v.State, v.Stage, prog, upd, v.Store)
		if v.Error != "" && v.State != pipeline.StateDone {
			fmt.Fprintf(w, "         %s\n", v.Error)
		}
	}
	fmt.Fprintf(w, "funnel (live counts of the shards' current runs, summed)\n")
	for _, s := range funnel {
		fmt.Fprintf(w, "  %-32s %d\n", s.Step, s.Count)
	}
	return nil
}
