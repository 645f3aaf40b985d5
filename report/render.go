package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"time"
)

//go:embed report.html.tmpl
var pageSrc string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"n":      thousands,
	"num":    num,
	"pct":    pct,
	"colour": typeColour,
	"f32":    func(f float32) string { return strconv.FormatFloat(float64(f), 'f', 3, 32) },
	"sub":    func(a, b int64) int64 { return a - b },
	"inc":    func(i int) int { return i + 1 },
	"at":     func(xs []int64, i int) int64 { return xs[i] },
	"atf":    func(xs []float64, i int) float64 { return xs[i] },
	"rate": func(n int64, s float64) string {
		if s <= 0 {
			return "—"
		}
		return rateFmt(float64(n) / s)
	},
	"int64": func(i int) int64 { return int64(i) },
	"mul2":  func(i int) int { return 2 * i },
	"deref": func(p *float64) float64 { return *p },
	"pctf":  func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" },
	"add3":  func(h [3]Hist) int64 { return h[0].Total() + h[1].Total() + h[2].Total() },
	"money": func(f float64) string { return strconv.FormatFloat(f, 'f', 4, 64) },
}).Parse(pageSrc))

func pct(a, b int64) string {
	if b == 0 {
		return "—"
	}
	return strconv.FormatFloat(100*float64(a)/float64(b), 'f', 1, 64) + "%"
}

// view is what the template reads: the data and its charts.
type view struct {
	*Data
	Charts   map[string]template.HTML
	ScoreAx  string
	WordsBy  []typeChart
	Slots    int64
	Cost     float64
	RankCut  string
	HasTypes bool
}

type typeChart struct {
	Type  string
	Chart template.HTML
	Total int64
	Mean  float64
}

// Render writes the report page of d to w: one HTML document with inline
// CSS and SVG, no script and no reference to anything outside it (its
// Content-Security-Policy forbids loading anything). The same d gives the
// same bytes.
func Render(w io.Writer, d *Data) error {
	v := &view{Data: d, Charts: map[string]template.HTML{}}
	if len(d.Funnel) > 0 {
		v.Slots = d.Funnel[0].Total
	}
	v.HasTypes = len(d.Types) > 0
	v.Cost = d.Tokens.Cost
	v.charts()
	if err := page.Execute(w, v); err != nil {
		return fmt.Errorf("report: render: %w", err)
	}
	return nil
}

func (v *view) charts() {
	d := v.Data
	// Funnel: every step, as counts and share of the query slots.
	var rows []hbar
	for _, s := range d.Funnel {
		rows = append(rows, hbar{Label: s.Name, Value: float64(s.Total), Colour: colNeutral,
			Text: thousands(s.Total) + "  (" + pct(s.Total, v.Slots) + ")"})
	}
	rows[len(rows)-1].Colour = outcomeColours["exported"]
	v.Charts["funnel"] = hbars("funnel", "Funnel from query slots to exported lists", "queries (share of the query slots in brackets)", rows)

	// Where each type's slots ended.
	legend := []segment{
		{Name: "exported", Colour: outcomeColours["exported"]},
		{Name: "no answer", Colour: outcomeColours["unanswered"]},
		{Name: "dropped: parse/dedup", Colour: outcomeColours["filter"]},
		{Name: "dropped: first pass", Colour: outcomeColours["mine"]},
		{Name: "not labelled", Colour: outcomeColours["label"]},
		{Name: "dropped: teacher", Colour: outcomeColours["teacher"]},
		{Name: "dropped: export", Colour: outcomeColours["export"]},
	}
	var srows []stackRow
	for i, t := range d.Types {
		at := func(step int) int64 { return d.Funnel[step].PerType[i] }
		segs := []segment{
			{Value: at(7)}, {Value: at(0) - at(1)}, {Value: at(1) - at(3)}, {Value: at(3) - at(4)},
			{Value: at(4) - at(5)}, {Value: at(5) - at(6)}, {Value: at(6) - at(7)},
		}
		for k := range segs {
			segs[k].Name, segs[k].Colour = legend[k].Name, legend[k].Colour
		}
		srows = append(srows, stackRow{Label: t, Colour: typeColour(t), Segments: segs})
	}
	v.Charts["outcomes"] = stacks("outcomes", "Where each query type's slots ended", "share of the type's query slots", srows, legend)

	// Query lengths per type.
	labels := make([]string, d.MaxQueryWords)
	for i := range labels {
		labels[i] = strconv.Itoa(i + 1)
	}
	for i, t := range d.Types {
		h := d.QueryWords[i]
		var sum float64
		for k, c := range h.Counts {
			sum += float64(k+1) * float64(c)
		}
		tc := typeChart{Type: t, Total: h.Total()}
		if tc.Total > 0 {
			tc.Mean = sum / float64(tc.Total)
		}
		tc.Chart = panels{ID: "words-" + t, Title: "Words per " + t + " query", Width: 380, PanelHeight: 120,
			XLabel: "words per query", YLabel: "unique queries", Labels: labels,
			Names: []string{t}, Colours: []string{typeColour(t)}, Counts: [][]int64{h.Counts}}.svg()
		v.WordsBy = append(v.WordsBy, tc)
	}
	clabels := make([]string, len(d.Copied.Counts))
	for i := range clabels {
		clabels[i] = strconv.Itoa(i)
	}
	v.Charts["copied"] = panels{ID: "copied", Title: "Longest run of words copied from the passage", PanelHeight: 120,
		XLabel: "longest run of consecutive passage words in the query (words)", YLabel: "sampled queries", Labels: clabels,
		Names: []string{"unique queries (sample)"}, Colours: []string{colNeutral}, Counts: [][]int64{d.Copied.Counts},
		Markers: []marker{{X: float64(len(clabels)), Label: fmt.Sprintf("runs over %d words are dropped", d.MaxCopiedWords), Colour: colCut}}}.svg()

	// Teacher scores.
	s := d.Scores
	switch s.Kind {
	case "lexical":
		v.ScoreAx = "teacher score (raw lexical BM25-style score, no unit)"
	case "logits":
		v.ScoreAx = "teacher score (raw cross-encoder logit)"
	default:
		v.ScoreAx = "teacher score (relevance as the API returns it, 0–1)"
	}
	names := []string{"source passage", "best-scored negative", "other candidates"}
	cols := []string{colSource, colBestNeg, colRest}
	var rawMarkers, normMarkers []marker
	rawMarkers = append(rawMarkers, marker{X: s.P1, Label: "p1 " + num(s.P1), Colour: colPct, Dash: true},
		marker{X: s.P99, Label: "p99 " + num(s.P99), Colour: colPct, Dash: true})
	if s.Cut != nil {
		lbl := fmt.Sprintf("top-score cut p%s = %s", num(s.CutPercentile), num(*s.Cut))
		rawMarkers = append(rawMarkers, marker{X: *s.Cut, Label: lbl, Colour: colCut})
		normMarkers = append(normMarkers, marker{X: s.NormCut, Label: fmt.Sprintf("top-score cut p%s = %s", num(s.CutPercentile), num(s.NormCut)), Colour: colCut})
	}
	sortMarkers(rawMarkers)
	v.Charts["scores-raw"] = panels{ID: "scores-raw", Title: "Raw teacher scores", XLabel: v.ScoreAx, YLabel: "candidate passages",
		Lo: s.Raw[0].Lo, Hi: s.Raw[0].Hi, Names: names, Colours: cols,
		Counts: [][]int64{s.Raw[0].Counts, s.Raw[1].Counts, s.Raw[2].Counts}, Markers: rawMarkers}.svg()
	v.Charts["scores-norm"] = panels{ID: "scores-norm", Title: "Normalised teacher scores", XLabel: "exported teacher score (normalised, 0–1)", YLabel: "candidate passages",
		Lo: s.Norm[0].Lo, Hi: s.Norm[0].Hi, Names: names, Colours: cols,
		Counts: [][]int64{s.Norm[0].Counts, s.Norm[1].Counts, s.Norm[2].Counts}, Markers: normMarkers}.svg()
	mc := make([]string, len(s.Margin.Counts))
	w := (s.Margin.Hi - s.Margin.Lo) / float64(max(len(mc), 1))
	for i := range mc {
		mc[i] = colSource
		if s.Margin.Lo+float64(i)*w < -1e-12 {
			mc[i] = colDrop
		}
	}
	v.Charts["margin"] = panels{ID: "margin", Title: "Margin of the source over the best negative", PanelHeight: 150,
		XLabel: "source score − best negative score (raw score units)", YLabel: "labelled lists",
		Lo: s.Margin.Lo, Hi: s.Margin.Hi, Names: []string{"labelled lists"}, Colours: []string{colSource}, BarColours: mc,
		Counts: [][]int64{s.Margin.Counts}, Markers: []marker{{X: 0, Label: "0: source = best negative", Colour: colCut, Dash: true}}}.svg()

	// First pass.
	fp := d.FirstPass
	if len(fp.Runs) > 0 {
		var lbls []string
		var mk []marker
		for i, b := range fp.Bins {
			lbls = append(lbls, b.Label)
			if fp.RoundtripK > 0 && b.Hi == fp.RoundtripK {
				mk = append(mk, marker{X: float64(i + 1), Label: fmt.Sprintf("round-trip cut: top %d", fp.RoundtripK), Colour: colCut})
			}
		}
		var rc []string
		for i, r := range fp.Runs {
			rc = append(rc, runColour(i, r))
		}
		v.Charts["ranks"] = panels{ID: "ranks", Title: "Rank of the source passage in the first-pass lists", PanelHeight: 100,
			XLabel: "rank of the source passage in the first-pass list", YLabel: "sampled queries",
			Labels: lbls, Names: fp.Runs, Colours: rc, Counts: fp.Counts, Markers: mk}.svg()
		if fp.RoundtripK > 0 {
			v.RankCut = strconv.Itoa(fp.RoundtripK)
		}
	}

	// Stage durations.
	var st []hbar
	for _, r := range d.Stages {
		txt := num(r.Seconds) + " s"
		if r.Items > 0 && r.Seconds > 0 {
			txt += " · " + rateFmt(float64(r.Items)/r.Seconds) + " " + r.Unit + "/s"
		}
		st = append(st, hbar{Label: r.Stage, Value: r.Seconds, Colour: colNeutral, Text: txt})
	}
	if len(st) > 0 {
		v.Charts["stages"] = hbars("stages", "Time per stage (last run of each)", "seconds (wall time of the stage's last run)", st)
	}
	v.throughput()
}

// throughput charts each endpoint's answers per second over the last run,
// on one time axis from the earliest endpoint's first request.
func (v *view) throughput() {
	var origin time.Time
	starts := make([]time.Time, len(v.Data.Endpoints))
	for i, e := range v.Data.Endpoints {
		if t, err := time.Parse(time.RFC3339Nano, e.Start); err == nil && len(e.Series) > 0 {
			starts[i] = t
			if origin.IsZero() || t.Before(origin) {
				origin = t
			}
		}
	}
	var ls []line
	var end float64
	for i, e := range v.Data.Endpoints {
		if len(e.Series) == 0 || e.SeriesStepS <= 0 {
			continue
		}
		off := 0.0
		if !starts[i].IsZero() {
			off = starts[i].Sub(origin).Seconds()
		}
		l := line{Name: e.Role + " " + e.URL, Colour: runColour(len(ls), "")}
		for k, y := range e.Series {
			l.X = append(l.X, off+(float64(k)+0.5)*e.SeriesStepS)
			l.Y = append(l.Y, y)
		}
		end = math.Max(end, off+float64(len(e.Series))*e.SeriesStepS)
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		return
	}
	unit, div := "seconds", 1.0
	if end > 1200 {
		unit, div = "minutes", 60
	}
	for i := range ls {
		for k := range ls[i].X {
			ls[i].X[k] /= div
		}
	}
	v.Charts["throughput"] = lines("throughput", "Answers per second of each endpoint over the last run",
		unit+" since the run's first request", "answers per second", end/div, ls)
}

// rateFmt formats a throughput: 12,345 or 12.3 or 0.123.
func rateFmt(f float64) string {
	if f >= 100 {
		return thousands(int64(f + 0.5))
	}
	return num(f)
}

// sortMarkers orders markers by position, so neighbouring labels alternate.
func sortMarkers(m []marker) {
	for i := 1; i < len(m); i++ {
		for j := i; j > 0 && m[j].X < m[j-1].X; j-- {
			m[j], m[j-1] = m[j-1], m[j]
		}
	}
}
