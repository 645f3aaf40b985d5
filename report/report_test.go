package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/pipeline"
)

// smallStore writes, by hand, the store of a tiny run: 5 passages, two
// query types, six query slots with every kind of outcome, and the records
// each stage leaves. The expected figures in the tests are counted from
// these records by hand.
//
//	slot           filter                    mine            teacher
//	d1:questions:0 "what is alpha"           kept (rank 1)   kept, list [d1 5, d2 1, d3 0]
//	d1:claims:0    "alpha beta gamma delta"  kept (rank 2)   source not top1 [d2 3, d1 2]
//	d2:questions:0 copied_passage            —               —
//	d2:claims:0    llm_failed                —               —
//	d3:questions:0 duplicate_in_corpus       —               —
//	d3:claims:0    "gamma"                   roundtrip_miss (rank 3 > k 2: a near miss)
func smallStore(t *testing.T, endpoints bool) (*pipeline.Store, *pipeline.Config) {
	t.Helper()
	st, err := pipeline.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := &pipeline.Config{
		QueryTypes: []string{"questions", "claims"}, Retrievers: []string{"bm25"}, RoundtripK: 2, Candidates: 5,
		MinCandidates: 1, ListSize: 3, RequireSourceTop1: true, Norm: "p1p99", Seed: 1, Offline: true,
		LLMURLs:  []string{"http://user:pw@llm:8000/v1?api_key=s3cret&x=1"},
		LLMExtra: map[string]any{"top_k": 20, "api_key": "s3cret"},
	}
	cfg.EnsureDefaults()
	put := func(k string, v any) {
		t.Helper()
		if err := st.PutJSON(k, v); err != nil {
			t.Fatal(err)
		}
	}
	put(dataset.MetaConfig, cfg)
	put(dataset.MetaCorpus, map[string]any{"sha256": "abc", "passages": 5})
	texts := map[string]string{"d1": "the first letter is alpha", "d2": "beta comes second", "d3": "gamma rays", "d4": "delta", "d5": "epsilon"}
	for id, tx := range texts {
		put(dataset.DocKey(id), dataset.Passage{Title: "T" + id, Text: tx})
	}
	put(dataset.QueryKey("d1:questions:0"), dataset.Query{DocID: "d1", Type: "questions", Text: "what is alpha"})
	put(dataset.QueryKey("d1:claims:0"), dataset.Query{DocID: "d1", Type: "claims", Text: "alpha beta gamma delta"})
	put(dataset.QueryKey("d2:questions:0"), dataset.Query{DocID: "d2", Type: "questions", Drop: "copied_passage", GenFP: "g2q"})
	put(dataset.AnswerKey("g2q"), dataset.Answer{Content: "beta comes second, copied"})
	put(dataset.QueryKey("d2:claims:0"), dataset.Query{DocID: "d2", Type: "claims", Drop: dataset.DropLLMFailed, GenFP: "g2c"})
	put(dataset.QueryKey("d3:questions:0"), dataset.Query{DocID: "d3", Type: "questions", Text: "what is alpha", Drop: dataset.DropDuplicateCorpus})
	put(dataset.QueryKey("d3:claims:0"), dataset.Query{DocID: "d3", Type: "claims", Text: "gamma"})
	put(dataset.MinedKey("d1:questions:0"), dataset.Mined{DocID: "d1", Type: "questions", Query: "what is alpha", DocIDs: []string{"d1", "d2", "d3"}, Ranks: []int32{1, 2, 3}})
	put(dataset.MinedKey("d1:claims:0"), dataset.Mined{DocID: "d1", Type: "claims", Query: "alpha beta gamma delta", DocIDs: []string{"d2", "d1"}, Ranks: []int32{1, 2}})
	put(dataset.MinedKey("d3:claims:0"), dataset.Mined{DocID: "d3", Type: "claims", Query: "gamma", Drop: dataset.DropRoundtrip})
	runs, err := dataset.FirstPassRuns(st, cfg)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %v %v", runs, err)
	}
	hits := map[string][]string{"what is alpha": {"d1", "d2", "d3"}, "alpha beta gamma delta": {"d2", "d1"}, "gamma": {"d5", "d4", "d3"}}
	for q, ids := range hits {
		put(dataset.HitsKey(runs[0].FP, q), map[string]any{"ids": ids, "scores": make([]float32, len(ids))})
	}
	put(dataset.LabelKey("d1:questions:0"), dataset.Labelled{DocID: "d1", Type: "questions", Query: "what is alpha",
		DocIDs: []string{"d1", "d2", "d3"}, Ranks: []int32{1, 2, 3}, Raw: []float32{5, 1, 0}})
	put(dataset.LabelKey("d1:claims:0"), dataset.Labelled{DocID: "d1", Type: "claims", Query: "alpha beta gamma delta",
		DocIDs: []string{"d2", "d1"}, Ranks: []int32{1, 2}, Raw: []float32{3, 2}})
	put(pipeline.PrefixStat+"corpus", pipeline.StageStats{Counts: map[string]int64{"passages": 5}, Seconds: 2})
	put(pipeline.PrefixStat+"filter", pipeline.StageStats{Counts: map[string]int64{"passages_asked": 3, "answers": 5, "prompt_tokens": 1000, "completion_tokens": 50}, Seconds: 1})
	put(dataset.FailKey("x"), dataset.Failure{Stage: "generate", Item: "d2:claims:0", Reason: "http://user:pw@llm:8000/v1?key=s3cret: 400 context length"})
	if endpoints {
		put(dataset.MetaEndpoints, []Endpoint{
			{Role: "llm", URL: "http://gpu1:8000/v1", Requests: 120, Errors: 2, Refusals: 1, Retries: 3, Concurrency: 24, Rate: 41.5, P50ms: 350, P99ms: 1200,
				Start: "2026-11-23T10:00:00Z", Series: []float64{10, 20, 30}, SeriesStepS: 1},
			{Role: "teacher", URL: "http://tei:8080?token=s3cret", Requests: 40, Concurrency: 8, Rate: 12.25, P50ms: 80, P99ms: 300,
				Start: "2026-11-23T10:00:01Z", Series: []float64{5, 6}, SeriesStepS: 1},
		})
	}
	return st, cfg
}

func build(t *testing.T, st *pipeline.Store, cfg *pipeline.Config) *Data {
	t.Helper()
	d, err := Build(context.Background(), st, cfg, &Options{StorePath: "out/store"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFunnelByHand(t *testing.T) {
	st, cfg := smallStore(t, false)
	d := build(t, st, cfg)
	if !slices.Equal(d.Types, []string{"questions", "claims"}) {
		t.Fatalf("types %v", d.Types)
	}
	// step -> {questions, claims}
	want := map[string][2]int64{
		"query slots": {3, 3}, "answered by the LLM": {3, 2}, "parsed": {2, 2}, "unique": {1, 2},
		MinedStep: {1, 1}, "labelled by the teacher": {1, 1}, "kept by the teacher filters": {1, 0}, "exported": {1, 0},
	}
	drops := map[string][2]int64{
		"filter/llm_failed": {0, 1}, "filter/copied_passage": {1, 0}, "filter/duplicate_in_corpus": {1, 0},
		"mine/roundtrip_miss": {0, 1}, "teacher/teacher_source_not_top1": {0, 1},
	}
	gotDrops := map[string]bool{}
	for _, s := range d.Funnel {
		w, ok := want[s.Name]
		if !ok || s.PerType[0] != w[0] || s.PerType[1] != w[1] || s.Total != w[0]+w[1] {
			t.Errorf("step %q: %v total %d, want %v", s.Name, s.PerType, s.Total, w)
		}
		for _, dr := range s.Drops {
			k := dr.Stage + "/" + dr.Reason
			gotDrops[k] = true
			if w := drops[k]; dr.PerType[0] != w[0] || dr.PerType[1] != w[1] {
				t.Errorf("drop %s: %v, want %v", k, dr.PerType, w)
			}
		}
	}
	if len(gotDrops) != len(drops) {
		t.Errorf("drops %v, want %v", gotDrops, drops)
	}
	// Drops sit under the step they remove queries from.
	under := map[string]string{}
	for _, s := range d.Funnel {
		for _, dr := range s.Drops {
			under[dr.Reason] = s.Name
		}
	}
	if under["llm_failed"] != "query slots" || under["copied_passage"] != "answered by the LLM" ||
		under["duplicate_in_corpus"] != "parsed" || under["roundtrip_miss"] != "unique" || under["teacher_source_not_top1"] != "labelled by the teacher" {
		t.Errorf("drops under steps: %v", under)
	}
	if d.Exported != 1 || d.Train+d.Dev != 1 || d.Passages != 5 || d.PassagesAsked != 3 {
		t.Errorf("exported %d (train %d dev %d), passages %d asked %d", d.Exported, d.Train, d.Dev, d.Passages, d.PassagesAsked)
	}
	if d.FailureCount != 1 || d.Failures[0].Stage != "generate" || strings.Contains(d.Failures[0].Examples[0].Reason, "s3cret") {
		t.Errorf("failures %+v", d.Failures)
	}
}

func TestQueryFiguresByHand(t *testing.T) {
	st, cfg := smallStore(t, false)
	d := build(t, st, cfg)
	// Unique queries: questions "what is alpha" (3 words); claims 4 and 1 words.
	wantWords := map[int]map[int]int64{0: {3: 1}, 1: {4: 1, 1: 1}}
	for ti, h := range d.QueryWords {
		for i, c := range h.Counts {
			if c != wantWords[ti][i+1] {
				t.Errorf("type %d, %d words: %d, want %d", ti, i+1, c, wantWords[ti][i+1])
			}
		}
	}
	if !slices.Equal(d.Answered, []int64{3, 2}) || !slices.Equal(d.CopiedDrops, []int64{1, 0}) {
		t.Errorf("answered %v copied %v", d.Answered, d.CopiedDrops)
	}
	// Longest copied runs: "what is alpha" / "the first letter is alpha" = 2
	// ("is alpha"); "alpha beta gamma delta" / d1 = 1; "gamma" / "gamma rays" = 1.
	if d.CopiedSampled != 3 || d.Copied.Counts[1] != 2 || d.Copied.Counts[2] != 1 || d.Copied.Total() != 3 {
		t.Errorf("copied %+v (sampled %d)", d.Copied, d.CopiedSampled)
	}
}

func TestScoreFiguresByHand(t *testing.T) {
	st, cfg := smallStore(t, false)
	d := build(t, st, cfg)
	s := d.Scores
	// All candidate scores: 0 1 2 3 5. numpy: p1 = 0.04, p99 = 3 + 0.96·2 = 4.92.
	if s.Lists != 2 || s.Min != 0 || s.Max != 5 || fmt.Sprintf("%.4f %.4f", s.P1, s.P99) != "0.0400 4.9200" || s.Cut != nil {
		t.Errorf("scores %+v", s)
	}
	bin := func(v float64) int { return int((v - s.Min) / (s.Max - s.Min) * scoreBins) }
	check := func(name string, h Hist, vals ...float64) {
		t.Helper()
		want := make([]int64, scoreBins)
		for _, v := range vals {
			want[min(bin(v), scoreBins-1)]++
		}
		if !slices.Equal(h.Counts, want) {
			t.Errorf("%s: %v, want %v", name, h.Counts, want)
		}
	}
	check("source", s.Raw[0], 5, 2)
	check("best negative", s.Raw[1], 1, 3)
	check("rest", s.Raw[2], 0)
	if s.Norm[0].Total() != 2 || s.Norm[1].Total() != 2 || s.Norm[2].Total() != 1 {
		t.Errorf("normalised totals %d %d %d", s.Norm[0].Total(), s.Norm[1].Total(), s.Norm[2].Total())
	}
	// Normalised source scores: 5 → 1 (clipped), 2 → (2 − 0.04)/4.88 = 0.4016.
	if s.Norm[0].Counts[scoreBins-1] != 1 || s.Norm[0].Counts[9] != 1 { // 0.4016·24 = 9.6
		t.Errorf("normalised source %v", s.Norm[0].Counts)
	}
	// Margins: 5 − 1 = 4 and 2 − 3 = −1; one list has the source first.
	if s.SourceTop1 != 1 || s.MeanMarginPositive != 4 || s.Margin.Total() != 2 {
		t.Errorf("top1 %d mean margin %v margin %+v", s.SourceTop1, s.MeanMarginPositive, s.Margin)
	}
	w := (s.Margin.Hi - s.Margin.Lo) / float64(len(s.Margin.Counts))
	var neg, pos int64
	for i, c := range s.Margin.Counts {
		lo := s.Margin.Lo + float64(i)*w
		if lo+w <= 1e-9 {
			neg += c
		} else if lo >= -1e-9 {
			pos += c
		} else if c > 0 {
			t.Errorf("margin bin [%v, %v) straddles 0", lo, lo+w)
		}
	}
	if neg != 1 || pos != 1 || s.Margin.Lo > -1 || s.Margin.Hi < 4 {
		t.Errorf("margin %+v: %d below 0, %d above", s.Margin, neg, pos)
	}
}

func TestFirstPassByHand(t *testing.T) {
	st, cfg := smallStore(t, false)
	d := build(t, st, cfg)
	fp := d.FirstPass
	// Source ranks 1, 2 and 3; k = 2, so rank 3 is a near miss (3 ≤ 2k).
	if !slices.Equal(fp.Runs, []string{"bm25"}) || fp.Sampled != 3 || fp.Queries != 3 || fp.Missing != 0 {
		t.Fatalf("first pass %+v", fp)
	}
	var labels []string
	for _, b := range fp.Bins {
		labels = append(labels, b.Label)
	}
	if strings.Join(labels, ",") != "1,2,3,4,5,not retrieved" || !slices.Equal(fp.Counts[0], []int64{1, 1, 1, 0, 0, 0}) {
		t.Errorf("bins %v counts %v", labels, fp.Counts)
	}
	if fp.NearMisses[0] != 1 || fp.InTopK[0] != 2 {
		t.Errorf("near misses %v in top k %v", fp.NearMisses, fp.InTopK)
	}
}

func TestOverlapTwoRuns(t *testing.T) {
	// Two retrievers: overlap of their top k and who found the source.
	st, cfg := smallStore(t, false)
	cfg.Retrievers = []string{"bm25", "dense"}
	cfg.EmbedModels, cfg.EmbedURLs = []string{"e5"}, []string{"http://e:1/v1"}
	runs, err := dataset.FirstPassRuns(st, cfg)
	if err != nil || len(runs) != 2 {
		t.Fatal(runs, err)
	}
	dense := map[string][]string{"what is alpha": {"d2", "d1", "d4"}, "alpha beta gamma delta": {"d1", "d5"}, "gamma": {"d3", "d4"}}
	for q, ids := range dense {
		if err := st.PutJSON(dataset.HitsKey(runs[1].FP, q), map[string]any{"ids": ids}); err != nil {
			t.Fatal(err)
		}
	}
	fp := build(t, st, cfg).FirstPass
	if !slices.Equal(fp.Runs, []string{"bm25", "dense", "fused"}) || fp.Sampled != 3 {
		t.Fatalf("runs %v sampled %d", fp.Runs, fp.Sampled)
	}
	// Top 2: bm25 {d1 d2} {d2 d1} {d5 d4}; dense {d2 d1} {d1 d5} {d3 d4}.
	// bm25's share in dense: 2/2, 1/2, 1/2 → 2/3; dense's in bm25: the same.
	if fmt.Sprintf("%.4f %.4f %.1f", fp.Overlap[0][1], fp.Overlap[1][0], fp.Overlap[0][0]) != "0.6667 0.6667 1.0" {
		t.Errorf("overlap %v", fp.Overlap)
	}
	// Source in top 2: q1 both; q2 both (bm25 rank 2, dense rank 1); q3 dense only.
	if !slices.Equal(fp.FoundBy, []int64{2, 0, 1, 0}) {
		t.Errorf("found by %v", fp.FoundBy)
	}
	// Fused (RRF k=60): q3 = d3 at 1/61 (dense 1) + 1/63 (bm25 3), first.
	if fp.Counts[2][0] < 1 || fp.Counts[1][0] != 2 {
		t.Errorf("counts %v", fp.Counts)
	}
}

func TestRenderSectionsEndpointsRedactionDeterminism(t *testing.T) {
	st, cfg := smallStore(t, true)
	var a, b bytes.Buffer
	if err := Render(&a, build(t, st, cfg)); err != nil {
		t.Fatal(err)
	}
	if err := Render(&b, build(t, st, cfg)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same store rendered different bytes")
	}
	page := a.String()
	for _, want := range []string{
		`data-section="funnel"`, `data-section="queries"`, `data-section="scores"`, `data-section="firstpass"`,
		`data-section="cost"`, `data-section="examples"`, `data-section="dropped"`, `data-section="settings"`,
		`data-chart="funnel"`, `data-chart="outcomes"`, `data-chart="words-questions"`, `data-chart="words-claims"`, `data-chart="copied"`,
		`data-chart="scores-raw"`, `data-chart="scores-norm"`, `data-chart="margin"`, `data-chart="ranks"`, `data-chart="stages"`,
		`data-table="endpoints"`, `http://gpu1:8000/v1`, `http://tei:8080?token=REDACTED`, `41.50`,
		`synthq inspect --store out/store d1:questions:0`, `data-reason="teacher/teacher_source_not_top1"`,
		`beta comes second, copied`, `http://llm:8000/v1?key=REDACTED: 400 context length`, `http://llm:8000/v1?api_key=REDACTED&amp;x=1`,
		`Content-Security-Policy`, `default-src 'none'`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	for _, secret := range []string{"s3cret", "user:pw", "pw@"} {
		if strings.Contains(page, secret) {
			t.Errorf("page shows the secret %q", secret)
		}
	}
	// Offline: nothing to fetch.
	for _, ref := range []string{`src=`, `href="http`, `url(`, `@import`, `<script`} {
		if strings.Contains(page, ref) {
			t.Errorf("page references %s", ref)
		}
	}
	// Throughput over time: one line per endpoint, on one time axis (the
	// teacher's first request came 1 s after the LLM's: its first step is
	// centred at 1.5 s of 3).
	for _, want := range []string{`data-chart="throughput"`,
		`data-series="llm http://gpu1:8000/v1" data-points="3"`,
		`<polyline points="402.0,`, // left 62 + 1.5/3 of the 680-wide plot
		`data-series="teacher http://tei:8080?token=REDACTED" data-points="2"`} {
		if !strings.Contains(page, want) {
			t.Errorf("throughput chart lacks %s", want)
		}
	}
	// No meta/endpoints: no endpoint table.
	st2, cfg2 := smallStore(t, false)
	var c bytes.Buffer
	if err := Render(&c, build(t, st2, cfg2)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.String(), `data-table="endpoints"`) || strings.Contains(c.String(), `data-chart="throughput"`) {
		t.Error("endpoint table or throughput chart without meta/endpoints")
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:8000/v1":                     "http://localhost:8000/v1",
		"https://u:p@api.example.com/v1":               "https://api.example.com/v1",
		"https://api.example.com/v1?key=abc&model=x":   "https://api.example.com/v1?key=REDACTED&model=x",
		"https://h/v1?api_key=a&access_token=b&sig=c":  "https://h/v1?api_key=REDACTED&access_token=REDACTED&sig=REDACTED",
		"https://h/v1?max_tokens=5":                    "https://h/v1?max_tokens=5",
		"not a url":                                    "not a url",
		"tried http://a:b@h:1/x: connection refused":   "tried http://h:1/x: connection refused",
		"https://s3.example/o?X-Amz-Signature=abc&a=1": "https://s3.example/o?X-Amz-Signature=REDACTED&a=1",
	} {
		if got := redact.Text(in); got != want {
			t.Errorf("redact.Text(%q) = %q, want %q", in, got, want)
		}
	}
	red := Redact(map[string]any{"api_key": "k", "max_tokens": 50.0, "urls": []any{"http://a:b@h"}, "http://u:p@h/v1": 3.0}).(map[string]any)
	b, _ := json.Marshal(red)
	if strings.Contains(string(b), `"k"`) || strings.Contains(string(b), "a:b") || strings.Contains(string(b), "u:p") || !strings.Contains(string(b), `"max_tokens":50`) {
		t.Errorf("Redact: %s", b)
	}
}

func TestSamplerKeepsSmallestHashes(t *testing.T) {
	s := sampler[int]{k: 3}
	for i, h := range []uint64{50, 10, 40, 30, 20, 60} {
		s.offer(h, func() int { return i })
	}
	if got := s.sorted(); !slices.Equal(got, []int{1, 4, 3}) { // hashes 10, 20, 30
		t.Errorf("sample %v", got)
	}
}

func TestRankBins(t *testing.T) {
	var got []string
	for _, b := range rankBins(20, 100) {
		got = append(got, b.Label)
	}
	if strings.Join(got, " ") != "1 2 3 4–5 6–10 11–20 21–40 41–50 51–100 not retrieved" {
		t.Errorf("bins %v", got)
	}
}

// Inputs a server refused as too long and that were cut again from its
// stated count (issue 26) are shown beside the stage's items; none: nothing.
func TestStagesShowInputsCutAgain(t *testing.T) {
	st, cfg := smallStore(t, false)
	var plain bytes.Buffer
	if err := Render(&plain, build(t, st, cfg)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "cut again") {
		t.Error("a run with nothing cut again mentions it")
	}
	for k, c := range map[string]map[string]int64{
		"mine":  {"kept": 2, "texts_cut_again": 3},
		"label": {"pairs_scored": 5, "candidates_cut_again": 26},
	} {
		if err := st.PutJSON(pipeline.PrefixStat+k, pipeline.StageStats{Counts: c, Seconds: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := Render(&b, build(t, st, cfg)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"5 pairs scored (26 candidates cut again)", "(3 texts cut again)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("stages table lacks %q", want)
		}
	}
}
