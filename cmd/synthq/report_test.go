package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/inspect"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/report"
)

var update = flag.Bool("update", false, "rewrite the reviewed artefacts under testdata/ (the report page and its screenshot, the export hashes)")

// reportStore is the testdata run with per-endpoint figures added under
// meta/endpoints, as a run with fleet scheduling stores them.
func reportStore(t *testing.T) (out, store string) {
	t.Helper()
	out, store = offlineStore(t)
	st, err := pipeline.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutJSON(dataset.MetaEndpoints, []report.Endpoint{
		{Role: "llm", URL: "http://gpu1:8000/v1", Requests: 240, Errors: 1, Refusals: 2, Retries: 3, Concurrency: 32, Rate: 96.5, P50ms: 310, P99ms: 920},
		{Role: "teacher", URL: "http://tei:8080", Requests: 211, Concurrency: 8, Rate: 48.25, P50ms: 40, P99ms: 130},
	}); err != nil {
		t.Fatal(err)
	}
	return out, store
}

// synthq report writes the same bytes twice, with the funnel of synthq
// stats and the rows of the export; run --report writes OUT/report.html.
func TestReportCommand(t *testing.T) {
	out, store := reportStore(t)
	train, dev := checkOutput(t, out)
	var pages [2][]byte
	for i := range pages {
		path := filepath.Join(t.TempDir(), "r.html")
		if code, msg := synthq(t, context.Background(), "report", "--store", store, "--out", path); code != 0 {
			t.Fatalf("report: exit %d: %s", code, msg)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		pages[i] = b
	}
	if !bytes.Equal(pages[0], pages[1]) {
		t.Fatal("two reports of the same store differ")
	}
	page := string(pages[0])
	if len(page) > 2<<20 {
		t.Errorf("report is %d bytes", len(page))
	}
	code, msg := synthq(t, context.Background(), "stats", "--store", store, "--json")
	var js struct {
		Funnel []inspect.FunnelStep `json:"funnel"`
	}
	if code != 0 || json.Unmarshal([]byte(msg), &js) != nil {
		t.Fatalf("stats: exit %d: %s", code, msg)
	}
	// The report's funnel totals (read from the records) equal the stage
	// counters that synthq stats prints.
	stats := map[string]int64{}
	for _, s := range js.Funnel {
		stats[s.Step] = s.Count
	}
	// The report lists both mine drops under "unique" and names the step
	// after it for both; stats splits it in two.
	stats[report.MinedStep] = stats["with at least --min-candidates candidates"]
	for _, step := range []string{"query slots", "answered by the LLM", "parsed", "unique", report.MinedStep, "labelled by the teacher", "kept by the teacher filters", "exported"} {
		if got := stepTotal(t, page, step); got != stats[step] {
			t.Errorf("step %q: report %d, stats %d", step, got, stats[step])
		}
	}
	if got := stepTotal(t, page, "exported"); got != int64(len(train)+len(dev)) {
		t.Errorf("exported %d, files hold %d", got, len(train)+len(dev))
	}
	for _, want := range []string{`data-table="endpoints"`, `http://gpu1:8000/v1`, "synthq inspect --store " + store + " kb0"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %s", want)
		}
	}

	run := t.TempDir()
	if code, msg := synthq(t, context.Background(), "run", "--offline", "--corpus", corpus, "--out", run, "--quiet",
		"--min-candidates", "5", "--min-top-percentile", "10", "--list-size", "6", "--report"); code != 0 {
		t.Fatalf("run --report: exit %d: %s", code, msg)
	}
	b, err := os.ReadFile(filepath.Join(run, "report.html"))
	if err != nil || !strings.Contains(string(b), `data-section="funnel"`) {
		t.Fatalf("run --report: %v", err)
	}
}

var stepRe = regexp.MustCompile(`<tr class="step" data-step="([^"]+)">.*?data-total="(\d+)"`)

func stepTotal(t *testing.T, page, step string) int64 {
	t.Helper()
	for _, m := range stepRe.FindAllStringSubmatch(page, -1) {
		if m[1] == step {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			return n
		}
	}
	t.Fatalf("no funnel step %q in the page", step)
	return 0
}

// findBrowser returns Chromium's path; without one the test skips, unless
// SYNTHQ_BROWSER=1 (CI), where it fails.
func findBrowser(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SYNTHQ_BROWSER") == "1" {
		t.Fatal("SYNTHQ_BROWSER=1 but no chromium on PATH: apt-get install chromium")
	}
	t.Skip("no chromium installed: apt-get install chromium (or set SYNTHQ_BROWSER=1 to make this a failure)")
	return ""
}

// The report of the testdata run, opened in headless Chromium: every
// section and chart is in the DOM with its figures, the page fetches
// nothing (offline), and a screenshot is taken for review.
//
// Offline is checked three ways. The page carries a Content-Security-Policy
// (default-src 'none'), so the browser refuses any fetch it would make. The
// page is served by a local server that records every request: only the
// page itself may be asked for. And Chromium's network log is read: every
// request made on the page's behalf carries the page's network isolation
// key (its site), whatever the host, so any such request other than the
// page is a failure; the browser's own background requests (component
// updates, accounts) carry another key and are not the page's.
func TestReportInBrowser(t *testing.T) {
	browser := findBrowser(t)
	_, store := reportStore(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	if code, msg := synthq(t, context.Background(), "report", "--store", store, "--out", path); code != 0 {
		t.Fatalf("report: exit %d: %s", code, msg)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/report.html" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	}))
	defer srv.Close()
	url := srv.URL + "/report.html"

	shot, netlog := filepath.Join(dir, "shot.png"), filepath.Join(dir, "net.json")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// One launch: the DOM after load on stdout, a screenshot, the net log.
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--log-net-log="+netlog,
		"--window-size=1280,2000", "--screenshot="+shot, "--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, lastLines(stderr.String(), 20))
	}
	dom := stdout.String()

	// Every section and chart, with its figures.
	for _, s := range []string{"summary", "funnel", "queries", "scores", "firstpass", "cost", "examples", "dropped", "settings"} {
		if !strings.Contains(dom, `data-section="`+s+`"`) {
			t.Errorf("DOM lacks section %s", s)
		}
	}
	charts := []string{"funnel", "outcomes", "copied", "scores-raw", "scores-norm", "margin", "ranks", "stages"}
	for _, qt := range []string{"questions", "claims", "titles", "keywords", "msmarco", "random"} {
		charts = append(charts, "words-"+qt)
	}
	for _, c := range charts {
		if !regexp.MustCompile(`data-chart="` + c + `"><svg[^>]*>`).MatchString(dom) {
			t.Errorf("DOM lacks chart %s with its svg", c)
		}
	}
	cfg := storedConfigOf(t, store)
	d := buildReport(t, store, cfg)
	figures := map[string]string{
		"passages": fmt.Sprint(d.Passages), "slots": thousandsOf(d.Funnel[0].Total), "exported": thousandsOf(d.Exported),
		"source-top1": thousandsOf(d.Scores.SourceTop1),
	}
	for name, want := range figures {
		re := regexp.MustCompile(`data-figure="` + name + `">([^<]*)<`)
		if m := re.FindStringSubmatch(dom); m == nil || m[1] != want {
			t.Errorf("figure %s: %v, want %s", name, m, want)
		}
	}
	// Bars carry their counts: the raw-score panels hold every labelled
	// candidate score, the source panel one per labelled list.
	if got := seriesSum(dom, "scores-raw", "source passage"); got != d.Scores.Lists {
		t.Errorf("raw source bars sum to %d, want %d lists", got, d.Scores.Lists)
	}
	for i, qt := range d.Types {
		if got := seriesSum(dom, "words-"+qt, qt); got != d.Funnel[3].PerType[i] {
			t.Errorf("%s length bars sum to %d, want %d unique queries", qt, got, d.Funnel[3].PerType[i])
		}
	}
	if !strings.Contains(dom, `data-endpoint="http://gpu1:8000/v1"`) || !strings.Contains(dom, "96.50") {
		t.Error("DOM lacks the endpoint table")
	}

	// Offline.
	mu.Lock()
	if len(asked) != 1 || asked[0] != "GET /report.html" {
		t.Errorf("the server was asked for %v, want only the page", asked)
	}
	mu.Unlock()
	site := strings.TrimSuffix(srv.URL[:strings.LastIndex(srv.URL, ":")], "/")
	for _, u := range pageRequests(t, netlog, site) {
		if u != url {
			t.Errorf("the page requested %s", u)
		}
	}

	// The screenshot: a 1280×2000 image with something drawn on it.
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2000 {
		t.Errorf("screenshot %v", b)
	}
	dark := 0
	for y := 0; y < 2000; y += 4 {
		for x := 0; x < 1280; x += 4 {
			if r, g, b, _ := img.At(x, y).RGBA(); r+g+b < 3*0x8000 {
				dark++
			}
		}
	}
	if dark < 1000 {
		t.Errorf("screenshot looks blank (%d dark samples)", dark)
	}
	if *update {
		for src, dst := range map[string]string{shot: "report.png", path: "report.html"} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("..", "..", "testdata", dst), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// pageRequests reads a Chromium net log and returns the URLs of the
// requests made under the page's network isolation key (site).
func pageRequests(t *testing.T, netlog, site string) []string {
	t.Helper()
	b, err := os.ReadFile(netlog)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	if !json.Valid([]byte(s)) {
		// A log cut short by the browser's exit lacks its closing brackets.
		s = strings.TrimRight(s, ",") + "]}"
	}
	var log struct {
		Constants struct {
			Types map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int            `json:"type"`
			Params map[string]any `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(s), &log); err != nil {
		t.Fatalf("net log: %v", err)
	}
	start, ok := log.Constants.Types["URL_REQUEST_START_JOB"]
	if !ok {
		t.Fatal("net log: no URL_REQUEST_START_JOB event type")
	}
	var urls []string
	seen := 0
	for _, e := range log.Events {
		if e.Type != start {
			continue
		}
		seen++
		nik, _ := e.Params["network_isolation_key"].(string)
		if strings.Contains(nik, site) {
			u, _ := e.Params["url"].(string)
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		t.Fatalf("net log: no request under the page's key %s among %d (is the log format still the same?)", site, seen)
	}
	return urls
}

// seriesSum adds the data-count of the bars of one series of a chart.
func seriesSum(dom, chart, series string) int64 {
	i := strings.Index(dom, `data-chart="`+chart+`"`)
	if i < 0 {
		return -1
	}
	rest := dom[i:]
	rest = rest[:strings.Index(rest, "</figure>")]
	j := strings.Index(rest, `data-series="`+series+`"`)
	if j < 0 {
		return -1
	}
	rest = rest[j:]
	rest = rest[:strings.Index(rest, "</g>")]
	var n int64
	for _, m := range regexp.MustCompile(`data-count="(\d+)"`).FindAllStringSubmatch(rest, -1) {
		c, _ := strconv.ParseInt(m[1], 10, 64)
		n += c
	}
	return n
}

func storedConfigOf(t *testing.T, store string) *pipeline.Config {
	t.Helper()
	st, err := pipeline.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var cfg pipeline.Config
	if _, err := st.GetJSON(dataset.MetaConfig, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.EnsureDefaults()
	return &cfg
}

func buildReport(t *testing.T, store string, cfg *pipeline.Config) *report.Data {
	t.Helper()
	st, err := pipeline.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := report.Build(context.Background(), st, cfg, &report.Options{StorePath: store})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func thousandsOf(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
