package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/synthq/synthq/inspect"
)

// inspect tells a query's whole story, and stats shows the funnel.
func TestInspectAndFunnel(t *testing.T) {
	out, store := offlineStore(t)
	train, dev := checkOutput(t, out)
	exported := map[string]row{}
	for _, r := range append(train, dev...) {
		exported[r.QID] = r
	}
	outcomes := map[string]int{}
	for d := 1; d <= 12; d++ {
		for _, qt := range []string{"questions", "claims", "titles", "keywords", "msmarco", "random"} {
			qid := fmt.Sprintf("kb%03d:%s:0", d, qt)
			code, msg := synthq(t, context.Background(), "inspect", "--store", store, "--json", qid)
			if code != 0 {
				t.Fatalf("inspect %s: exit %d: %s", qid, code, msg)
			}
			var s inspect.Story
			if err := json.Unmarshal([]byte(msg), &s); err != nil {
				t.Fatalf("inspect %s --json: %v: %s", qid, err, msg)
			}
			kind, _, _ := strings.Cut(s.Outcome, ":")
			outcomes[kind]++
			if s.Answer == nil || len(s.Prompt) == 0 || !strings.Contains(s.Prompt[len(s.Prompt)-1].Content, s.Passage.Text[:40]) {
				t.Fatalf("%s: story lacks the answer or a prompt with the passage: %+v", qid, s)
			}
			r, isExported := exported[qid]
			if isExported != (kind == "exported") {
				t.Fatalf("%s: outcome %q but exported=%v", qid, s.Outcome, isExported)
			}
			if !isExported {
				continue
			}
			// The candidates in exported positions are exactly the exported list.
			list := make([]string, len(r.DocIDs))
			for _, c := range s.Candidates {
				if c.Exported > 0 {
					list[c.Exported-1] = c.DocID
					if *c.Score != r.Scores[c.Exported-1] || *c.Raw != r.Raw[c.Exported-1] {
						t.Fatalf("%s: %s scores %v/%v, exported %v/%v", qid, c.DocID, *c.Raw, *c.Score, r.Raw[c.Exported-1], r.Scores[c.Exported-1])
					}
				}
			}
			if strings.Join(list, ",") != strings.Join(r.DocIDs, ",") || s.Query.Text != r.Query {
				t.Fatalf("%s: inspect list %v query %q, exported %v %q", qid, list, s.Query.Text, r.DocIDs, r.Query)
			}
		}
	}
	if outcomes["exported"] == 0 || outcomes["dropped at mine"]+outcomes["dropped at filter"]+outcomes["dropped at export"] == 0 {
		t.Errorf("outcomes %v: want both exported and dropped queries", outcomes)
	}
	code, msg := synthq(t, context.Background(), "inspect", "--store", store, "kb001:questions")
	if code != exitError || !strings.Contains(msg, "want <docid>:<type>:<n>") {
		t.Errorf("bad qid: exit %d: %s", code, msg)
	}
	// The funnel narrows step by step and ends at the exported rows.
	code, msg = synthq(t, context.Background(), "stats", "--store", store, "--json")
	var js struct {
		Funnel []inspect.FunnelStep `json:"funnel"`
	}
	if code != 0 || json.Unmarshal([]byte(msg), &js) != nil {
		t.Fatalf("stats --json: exit %d: %s", code, msg)
	}
	f := js.Funnel
	if f[0].Count != 40 || f[1].Count != 40 || f[2].Count != 240 || f[len(f)-1].Count != int64(len(train)+len(dev)) {
		t.Errorf("funnel %v", f)
	}
	// Passages narrow to passages asked about; query slots narrow to exported lists.
	for i := 1; i < len(f); i++ {
		if i != 2 && f[i].Count > f[i-1].Count {
			t.Errorf("funnel widens at %q: %v", f[i].Step, f)
		}
	}
}
