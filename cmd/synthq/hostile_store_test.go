package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// Every number flag of every command refuses NaN and ±Inf at the command
// line with exit 2 naming the flag (`synthq export --dev-fraction NaN` once
// cut a slice out of bounds), before anything is opened or written.
func TestNonFiniteFlagsExitUsage(t *testing.T) {
	_, store := offlineStore(t)
	before := treeSums(t, store)
	n := 0
	for _, cmd := range newApp(nil, nil).Commands {
		for _, fl := range cmd.Flags {
			if !isFloat(fl) {
				continue
			}
			name := fl.Names()[0]
			for _, v := range []string{"NaN", "Inf", "-Inf", "+inf"} {
				n++
				args := []string{cmd.Name, "--" + name, v}
				has := map[string]bool{}
				for _, f := range cmd.Flags {
					has[f.Names()[0]] = true
				}
				if cmd.Name == "run" {
					args = append(args, "--offline", "--corpus", corpus)
				}
				if has["store"] {
					args = append(args, "--store", store)
				}
				for _, req := range []string{"queries", "qrels"} {
					if has[req] {
						args = append(args, "--"+req, corpus)
					}
				}
				if has["out"] {
					args = append(args, "--out", t.TempDir())
				}
				code, msg := synthq(t, context.Background(), args...)
				if code != exitUsage || !strings.Contains(msg, "--"+name) {
					t.Errorf("synthq %s --%s %s: exit %d: %s\nwant 2 naming --%s", cmd.Name, name, v, code, firstLine(msg), name)
				}
			}
		}
	}
	if n < 40 {
		t.Errorf("only %d cases: the flags were not found", n)
	}
	sameTree(t, "non-finite flags", treeSums(t, store), before)
}

// isFloat reports whether fl is a number flag with a fraction (a
// --config file's altsrc flag or a plain one).
func isFloat(fl cli.Flag) bool {
	switch fl.(type) {
	case *cli.Float64Flag, *altsrc.Float64Flag:
		return true
	}
	return false
}

func firstLine(s string) string { l, _, _ := strings.Cut(strings.TrimSpace(s), "\n"); return l }

// A damaged store is never half-read silently, and nothing of it is
// deleted. A store of a newer format: stats, report, export and inspect
// refuse it by name and change no file of it (export's writable open is
// checked read-only first). A labelled list whose lengths differ: report
// and export leave it out, name it and what is wrong and exit 3 (export
// records it as a failure, which stats then lists), inspect refuses it by
// key; the list itself stays as it was. (A cut MANIFEST:
// TestDamagedStoreRefusedUntouched.)
func TestDamagedStoresNamed(t *testing.T) {
	t.Run("newer format", func(t *testing.T) {
		_, store := offlineStore(t)
		st, err := pipeline.OpenStore(store)
		if err != nil {
			t.Fatal(err)
		}
		st.Put(pipeline.KeyFormat, []byte(strconv.Itoa(pipeline.StoreFormat+1)))
		st.Close()
		before := treeSums(t, store)
		for _, args := range [][]string{
			{"stats", "--store", store},
			{"report", "--store", store, "--out", filepath.Join(t.TempDir(), "r.html")},
			{"export", "--store", store, "--out", t.TempDir()},
			{"inspect", "--store", store, "kb001:questions:0"},
		} {
			code, msg := synthq(t, context.Background(), args...)
			if code == 0 || !strings.Contains(msg, "newer synthq") || !strings.Contains(msg, store) {
				t.Errorf("%s on a store of a newer format: exit %d: %s", args[0], code, msg)
			}
			sameTree(t, args[0]+" on a newer store", treeSums(t, store), before)
		}
	})
	t.Run("mismatched lengths", func(t *testing.T) {
		_, store := offlineStore(t)
		st, err := pipeline.OpenStore(store)
		if err != nil {
			t.Fatal(err)
		}
		var qid string
		var l dataset.Labelled
		st.Scan(pipeline.PrefixLabel, func(k string, v []byte) error {
			if qid == "" {
				qid = k
			}
			return nil
		})
		if ok, err := st.GetJSON(dataset.LabelKey(qid), &l); err != nil || !ok {
			t.Fatal(qid, err)
		}
		l.Raw = l.Raw[:1] // one raw score for many candidates
		st.PutJSON(dataset.LabelKey(qid), l)
		st.Close()
		key := dataset.LabelKey(qid)
		stored := func() []byte {
			st, err := pipeline.OpenStoreReadOnly(store)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			b, ok, err := st.Get(key)
			if err != nil || !ok {
				t.Fatalf("%s went from the store: %v", key, err)
			}
			return b
		}
		bad := stored()
		for _, tc := range []struct {
			args     []string
			code     int
			readOnly bool
		}{
			{[]string{"report", "--store", store, "--out", filepath.Join(t.TempDir(), "r.html")}, exitFailedItems, true},
			{[]string{"inspect", "--store", store, qid}, exitError, true},
			{[]string{"export", "--store", store, "--out", t.TempDir()}, exitFailedItems, false},
			{[]string{"stats", "--store", store}, 0, true}, // after export: its failure, named
		} {
			before := treeSums(t, store)
			code, msg := synthq(t, context.Background(), tc.args...)
			if code != tc.code || !strings.Contains(msg, key) || !strings.Contains(msg, "1 raw scores") {
				t.Errorf("%s with a list of mismatched lengths: exit %d: %s\nwant %d naming %s and what is wrong", tc.args[0], code, msg, tc.code, key)
			}
			if tc.readOnly {
				sameTree(t, tc.args[0]+" on a bad list", treeSums(t, store), before)
			}
			if got := stored(); string(got) != string(bad) {
				t.Errorf("%s changed the bad list: a user's store is never rewritten behind them", tc.args[0])
			}
		}
	})
}
