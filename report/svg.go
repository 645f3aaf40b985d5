package report

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Colours: one meaning, one colour, in every chart. Query types take Paul
// Tol's colour-blind-safe "bright" scheme; score roles and outcomes have
// their own.
var typeColours = map[string]string{
	"questions": "#4477AA", "claims": "#66CCEE", "titles": "#228833",
	"keywords": "#CCBB44", "msmarco": "#EE6677", "random": "#AA3377",
}

const (
	colSource  = "#1d3557" // the source passage
	colBestNeg = "#e07a00" // the best-scored negative
	colRest    = "#a9a9a9" // every other candidate
	colCut     = "#c0392b" // a filter cut
	colPct     = "#555555" // p1 / p99
	colNeutral = "#5b6c84"
	colDrop    = "#c0392b"
)

// Outcome colours: where a query slot ended.
var outcomeColours = map[string]string{
	"exported": "#2e7d32", "filter": "#d4a017", "mine": "#8e6bb8", "label": "#7f7f7f",
	"teacher": "#c0392b", "export": "#e8a0a0", "unanswered": "#4d4d4d",
}

var runColours = []string{"#4477AA", "#CC6677", "#117733", "#882255", "#999933"}

func typeColour(t string) string {
	if c, ok := typeColours[t]; ok {
		return c
	}
	return "#6f6f6f"
}

func runColour(i int, name string) string {
	if name == "fused" {
		return "#333333"
	}
	return runColours[i%len(runColours)]
}

// compact formats a count for a bar label: 987, 9.9k, 99k, 1.2M.
func compact(n int64) string {
	f := float64(n)
	switch {
	case n < 1000:
		return strconv.FormatInt(n, 10)
	case n < 10_000:
		return strconv.FormatFloat(f/1e3, 'f', 1, 64) + "k"
	case n < 1_000_000:
		return strconv.FormatFloat(f/1e3, 'f', 0, 64) + "k"
	case n < 10_000_000:
		return strconv.FormatFloat(f/1e6, 'f', 2, 64) + "M"
	default:
		return strconv.FormatFloat(f/1e6, 'f', 1, 64) + "M"
	}
}

// thousands formats n with thin-space-free comma grouping: 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func num(f float64) string {
	if f == 0 {
		f = 0 // no "-0"
	}
	if math.Abs(f) < 1e-9 {
		f = 0
	}
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "—"
	case f == math.Trunc(f) && math.Abs(f) < 1e6:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case math.Abs(f) >= 100:
		return strconv.FormatFloat(f, 'f', 1, 64)
	case math.Abs(f) >= 1:
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
	return strconv.FormatFloat(f, 'g', 3, 64)
}

// niceTicks returns round tick values covering [lo, hi], about n of them.
func niceTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) {
		return []float64{lo}
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step-1e-9) * step; v <= hi+step*1e-9; v += step {
		out = append(out, math.Round(v/step)*step)
	}
	return out
}

// svgBuf builds one SVG element.
type svgBuf struct{ strings.Builder }

func (b *svgBuf) f(format string, args ...any) { fmt.Fprintf(&b.Builder, format, args...) }

func esc(s string) string { return html.EscapeString(s) }

func px(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// marker is a vertical line at X (in axis units: a value for a numeric axis,
// a bin edge index for a categorical one).
type marker struct {
	X      float64
	Label  string
	Colour string
	Dash   bool
}

// panels is a chart of one or more stacked histograms sharing an x axis.
type panels struct {
	ID, Title      string
	XLabel, YLabel string
	Width          int
	PanelHeight    int
	// Either numeric bins over [Lo, Hi) (Labels nil) or categorical bins
	// named by Labels.
	Lo, Hi  float64
	Labels  []string
	Names   []string
	Colours []string
	Counts  [][]int64
	// BarColours optionally colours each bin of every panel (overrides Colours).
	BarColours []string
	Markers    []marker
}

func (p panels) svg() template.HTML {
	w := p.Width
	if w == 0 {
		w = 760
	}
	ph := p.PanelHeight
	if ph == 0 {
		ph = 110
	}
	const left, right, head, bottom = 64.0, 16.0, 20.0, 50.0
	top := 30.0 + 14*float64(max(len(p.Markers)-1, 0))
	nb := 0
	if len(p.Counts) > 0 {
		nb = len(p.Counts[0])
	}
	if p.Labels != nil {
		nb = len(p.Labels)
	}
	plotW := float64(w) - left - right
	h := top + float64(len(p.Counts))*(head+float64(ph)) + bottom
	bw := plotW / float64(max(nb, 1))
	xOf := func(v float64) float64 { // numeric value -> px
		if p.Labels != nil {
			return left + v*bw
		}
		return left + (v-p.Lo)/(p.Hi-p.Lo)*plotW
	}
	var b svgBuf
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %s" role="img" aria-label="%s" class="chart">`, w, px(h), esc(p.Title))
	b.f(`<title>%s</title>`, esc(p.Title))
	for pi, counts := range p.Counts {
		y0 := top + float64(pi)*(head+float64(ph)) + head // panel top
		var mx int64
		for _, c := range counts {
			mx = max(mx, c)
		}
		ymax := float64(max(mx, 1))
		ticks := niceTicks(0, ymax, 3)
		if last := ticks[len(ticks)-1]; last < ymax {
			ticks = append(ticks, last+(ticks[1]-ticks[0]))
		}
		top := ticks[len(ticks)-1]
		if top <= 0 {
			top = 1
		}
		yOf := func(v float64) float64 { return y0 + float64(ph) - v/top*float64(ph) }
		name := ""
		if pi < len(p.Names) {
			name = p.Names[pi]
		}
		var total int64
		for _, c := range counts {
			total += c
		}
		if name != "" {
			col := p.Colours[pi%len(p.Colours)]
			b.f(`<rect x="%s" y="%s" width="10" height="10" fill="%s"/>`, px(left), px(y0-head+4), col)
			b.f(`<text x="%s" y="%s" class="pn">%s <tspan class="muted">(%s)</tspan></text>`, px(left+14), px(y0-head+13), esc(name), thousands(total))
		}
		for _, t := range ticks {
			if t != math.Trunc(t) && top > 10 {
				continue
			}
			y := yOf(t)
			b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" class="grid"/>`, px(left), px(left+plotW), px(y), px(y))
			b.f(`<text x="%s" y="%s" class="yt">%s</text>`, px(left-6), px(y+4), compact(int64(t)))
		}
		b.f(`<g data-series="%s">`, esc(name))
		for i, c := range counts {
			col := p.Colours[pi%len(p.Colours)]
			if p.BarColours != nil {
				col = p.BarColours[i]
			}
			x := left + float64(i)*bw
			y := yOf(float64(c))
			b.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s" data-bin="%d" data-count="%d"><title>%s: %s</title></rect>`,
				px(x+1), px(y), px(math.Max(bw-2, 1)), px(y0+float64(ph)-y), col, i, c, esc(p.binLabel(i)), thousands(c))
			if c > 0 && bw >= 14 {
				b.f(`<text x="%s" y="%s" class="bl">%s</text>`, px(x+bw/2), px(y-3), compact(c))
			}
		}
		b.f(`</g>`)
		b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" class="axis"/>`, px(left), px(left+plotW), px(y0+float64(ph)), px(y0+float64(ph)))
	}
	yb := top + float64(len(p.Counts))*(head+float64(ph)) // bottom of the last panel
	// x ticks
	if p.Labels != nil {
		step := 1
		for float64(step)*bw < 34 && step < nb {
			step++
		}
		for i, l := range p.Labels {
			if i%step != 0 {
				continue
			}
			b.f(`<text x="%s" y="%s" class="xt">%s</text>`, px(left+(float64(i)+0.5)*bw), px(yb+16), esc(l))
		}
	} else {
		for _, t := range niceTicks(p.Lo, p.Hi, 8) {
			x := xOf(t)
			b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" class="axis"/>`, px(x), px(x), px(yb), px(yb+4))
			b.f(`<text x="%s" y="%s" class="xt">%s</text>`, px(x), px(yb+16), num(t))
		}
	}
	b.f(`<text x="%s" y="%s" class="xl">%s</text>`, px(left+plotW/2), px(h-10), esc(p.XLabel))
	b.f(`<text transform="translate(14 %s) rotate(-90)" class="yl">%s</text>`, px(top+(yb-top)/2), esc(p.YLabel))
	// Marker labels go in rows above the panels, each in the first row where
	// it does not overlap a label already placed.
	var placed [][2]float64 // per row: rightmost end so far (labels are placed left to right)
	for _, m := range p.Markers {
		x := xOf(m.X)
		if x < left-0.5 || x > left+plotW+0.5 {
			continue
		}
		dash := ""
		if m.Dash {
			dash = ` stroke-dasharray="5 3"`
		}
		lw := float64(len([]rune(m.Label))) * 6.6
		anchor, x0 := "middle", x-lw/2
		switch {
		case x-lw/2 < left-40:
			anchor, x0 = "start", x+3
		case x+lw/2 > float64(w)-4:
			anchor, x0 = "end", x-3-lw
		}
		row := 0
		for row < len(placed) && placed[row][0] > x0-8 {
			row++
		}
		if row == len(placed) {
			placed = append(placed, [2]float64{})
		}
		placed[row][0] = x0 + lw
		ly := top - 10 - float64(row)*14
		b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s" stroke-width="1.6"%s data-marker="%s"/>`, px(x), px(x), px(ly+3), px(yb), m.Colour, dash, esc(m.Label))
		tx := x
		switch anchor {
		case "start":
			tx = x + 3
		case "end":
			tx = x - 3
		}
		b.f(`<text x="%s" y="%s" class="ml" fill="%s" text-anchor="%s">%s</text>`, px(tx), px(ly), m.Colour, anchor, esc(m.Label))
	}
	b.f(`</svg>`)
	return template.HTML(b.String())
}

func (p panels) binLabel(i int) string {
	if p.Labels != nil {
		return p.Labels[i]
	}
	n := len(p.Counts[0])
	w := (p.Hi - p.Lo) / float64(n)
	return "[" + num(p.Lo+float64(i)*w) + ", " + num(p.Lo+float64(i+1)*w) + ")"
}

// hbar is one horizontal bar.
type hbar struct {
	Label, Text, Colour string
	Value               float64
	Indent              bool
}

// hbars draws labelled horizontal bars with their value at the end.
func hbars(id, title, xLabel string, rows []hbar) template.HTML {
	const w, left, right, rowH, top = 760.0, 250.0, 150.0, 24.0, 8.0
	h := top + float64(len(rows))*rowH + 34
	var mx float64
	for _, r := range rows {
		mx = math.Max(mx, r.Value)
	}
	if mx <= 0 {
		mx = 1
	}
	plotW := w - left - right
	var b svgBuf
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" role="img" aria-label="%s" class="chart">`, px(w), px(h), esc(title))
	b.f(`<title>%s</title>`, esc(title))
	for i, r := range rows {
		y := top + float64(i)*rowH
		lx, cls := left-8, "hl"
		if r.Indent {
			cls = "hl muted"
		}
		b.f(`<text x="%s" y="%s" class="%s">%s</text>`, px(lx), px(y+15), cls, esc(r.Label))
		bw := r.Value / mx * plotW
		b.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s" data-bar="%s" data-value="%s"/>`, px(left), px(y+3), px(math.Max(bw, 1)), px(rowH-6), r.Colour, esc(r.Label), strconv.FormatFloat(r.Value, 'f', -1, 64))
		b.f(`<text x="%s" y="%s" class="hv">%s</text>`, px(left+bw+6), px(y+15), esc(r.Text))
	}
	yb := top + float64(len(rows))*rowH
	b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" class="axis"/>`, px(left), px(left), px(top), px(yb))
	b.f(`<text x="%s" y="%s" class="xl">%s</text>`, px(left+plotW/2), px(h-8), esc(xLabel))
	b.f(`</svg>`)
	return template.HTML(b.String())
}

// segment is one part of a stacked bar.
type segment struct {
	Name, Colour string
	Value        int64
}

type stackRow struct {
	Label    string
	Colour   string
	Segments []segment
}

// stacks draws one 100% stacked bar per row, with a legend.
func stacks(id, title, xLabel string, rows []stackRow, legend []segment) template.HTML {
	const w, left, right, rowH = 760.0, 110.0, 20.0, 28.0
	lw := 0.0
	for _, s := range legend {
		lw += 24 + float64(len(s.Name))*6.4
	}
	top := 34 + 16*math.Floor(lw/(w-left-right)) // one more row per wrapped legend line
	h := top + float64(len(rows))*rowH + 40
	plotW := w - left - right
	var b svgBuf
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" role="img" aria-label="%s" class="chart">`, px(w), px(h), esc(title))
	b.f(`<title>%s</title>`, esc(title))
	lx, ly := left, 8.0
	for _, s := range legend {
		wd := 24 + float64(len(s.Name))*6.4
		if lx+wd > w-right && lx > left {
			lx, ly = left, ly+16
		}
		b.f(`<rect x="%s" y="%s" width="10" height="10" fill="%s"/><text x="%s" y="%s" class="lg">%s</text>`, px(lx), px(ly), s.Colour, px(lx+14), px(ly+9), esc(s.Name))
		lx += wd
	}
	for i, r := range rows {
		y := top + float64(i)*rowH
		var total int64
		for _, s := range r.Segments {
			total += s.Value
		}
		b.f(`<rect x="%s" y="%s" width="8" height="%s" fill="%s"/>`, px(8), px(y+4), px(rowH-8), r.Colour)
		b.f(`<text x="%s" y="%s" class="sl">%s</text>`, px(20), px(y+18), esc(r.Label))
		x := left
		for _, s := range r.Segments {
			if total == 0 || s.Value == 0 {
				continue
			}
			sw := float64(s.Value) / float64(total) * plotW
			b.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s" data-row="%s" data-seg="%s" data-count="%d"><title>%s, %s: %s of %s</title></rect>`,
				px(x), px(y+3), px(sw), px(rowH-6), s.Colour, esc(r.Label), esc(s.Name), s.Value, esc(r.Label), esc(s.Name), thousands(s.Value), thousands(total))
			if sw > 34 {
				b.f(`<text x="%s" y="%s" class="sv">%s</text>`, px(x+sw/2), px(y+18), compact(s.Value))
			}
			x += sw
		}
	}
	yb := top + float64(len(rows))*rowH
	for _, t := range []float64{0, 25, 50, 75, 100} {
		x := left + t/100*plotW
		b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" class="axis"/><text x="%s" y="%s" class="xt">%s%%</text>`, px(x), px(x), px(yb), px(yb+4), px(x), px(yb+16), num(t))
	}
	b.f(`<text x="%s" y="%s" class="xl">%s</text>`, px(left+plotW/2), px(h-6), esc(xLabel))
	b.f(`</svg>`)
	return template.HTML(b.String())
}

// line is one series of a line chart: values at X positions (in axis units).
type line struct {
	Name, Colour string
	X, Y         []float64
}

// lines draws series over a shared numeric x axis from 0 to xmax and a y
// axis from 0, with a legend above and a label on each axis.
func lines(id, title, xLabel, yLabel string, xmax float64, ls []line) template.HTML {
	const w, left, right, top, plotH = 760.0, 62.0, 18.0, 10.0, 190.0
	legendH := 18.0 * float64(len(ls))
	h := top + legendH + plotH + 46
	plotW := w - left - right
	var ymax float64
	for _, l := range ls {
		for _, y := range l.Y {
			ymax = math.Max(ymax, y)
		}
	}
	yt := niceTicks(0, math.Max(ymax, 1), 4)
	if last := yt[len(yt)-1]; last < ymax && len(yt) > 1 {
		yt = append(yt, last+(yt[1]-yt[0]))
	}
	ytop := math.Max(yt[len(yt)-1], 1)
	xmax = math.Max(xmax, 1)
	xt := niceTicks(0, xmax, 6)
	y0 := top + legendH
	xOf := func(x float64) float64 { return left + x/xmax*plotW }
	yOf := func(y float64) float64 { return y0 + plotH - y/ytop*plotH }
	var b svgBuf
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" role="img" aria-label="%s" class="chart" data-chart-id="%s">`, px(w), px(h), esc(title), esc(id))
	b.f(`<title>%s</title>`, esc(title))
	for i, l := range ls {
		y := top + float64(i)*18
		b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s" stroke-width="2.5"/>`, px(left), px(left+18), px(y+8), px(y+8), l.Colour)
		b.f(`<text x="%s" y="%s" class="lg">%s</text>`, px(left+24), px(y+12), esc(l.Name))
	}
	for _, t := range yt {
		y := yOf(t)
		b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" class="grid"/>`, px(left), px(left+plotW), px(y), px(y))
		b.f(`<text x="%s" y="%s" class="yt">%s</text>`, px(left-6), px(y+4), tick(t))
	}
	for _, t := range xt {
		if t > xmax {
			continue
		}
		x := xOf(t)
		b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" class="axis"/>`, px(x), px(x), px(y0+plotH), px(y0+plotH+4))
		b.f(`<text x="%s" y="%s" class="xt">%s</text>`, px(x), px(y0+plotH+16), tick(t))
	}
	b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" class="axis"/>`, px(left), px(left+plotW), px(y0+plotH), px(y0+plotH))
	b.f(`<line x1="%s" x2="%s" y1="%s" y2="%s" class="axis"/>`, px(left), px(left), px(y0), px(y0+plotH))
	for _, l := range ls {
		var pts strings.Builder
		for i := range l.Y {
			if i > 0 {
				pts.WriteByte(' ')
			}
			pts.WriteString(px(xOf(l.X[i])) + "," + px(yOf(l.Y[i])))
		}
		b.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round" data-series="%s" data-points="%d"><title>%s</title></polyline>`,
			pts.String(), l.Colour, esc(l.Name), len(l.Y), esc(l.Name))
	}
	b.f(`<text x="%s" y="%s" class="xl">%s</text>`, px(left+plotW/2), px(h-8), esc(xLabel))
	b.f(`<text x="14" y="%s" class="yl" transform="rotate(-90 14 %s)">%s</text>`, px(y0+plotH/2), px(y0+plotH/2), esc(yLabel))
	b.f(`</svg>`)
	return template.HTML(b.String())
}

// tick formats an axis tick: 1,200 or 2.5 (no trailing zeros).
func tick(t float64) string {
	if t == math.Trunc(t) {
		return thousands(int64(t))
	}
	return strconv.FormatFloat(t, 'f', -1, 64)
}
