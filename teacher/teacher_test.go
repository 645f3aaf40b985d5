package teacher

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/internal/window"
)

func passages(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("passage %d about %s", i, []string{"sync errors", "passwords", "storage quota"}[i%3])
	}
	return out
}

// Every API maps scores back by index: the fakes answer sorted by score, not
// in input order.
func TestScorersMapByIndex(t *testing.T) {
	for _, api := range APIs {
		t.Run(api, func(t *testing.T) {
			f := fakes.NewReranker(api, "m")
			defer f.Close()
			s, err := New(Config{API: api, URL: f.URL, Model: "m", Batch: 8})
			if err != nil {
				t.Fatal(err)
			}
			ps := passages(20)
			got, err := s.Score(context.Background(), "storage quota", ps)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range ps {
				want := fakes.Score("storage quota", p)
				if api != "tei" {
					want = fakes.Sigmoid(want) // vLLM and Cohere answer probabilities
				}
				if got[i] != float32(want) {
					t.Errorf("passage %d: score %v, want %v", i, got[i], want)
				}
			}
			if f.Counter.Total() != 3 {
				t.Errorf("%d requests for 20 passages in batches of 8, want 3", f.Counter.Total())
			}
		})
	}
}

func TestTEIBatchRefusalShrinksBatches(t *testing.T) {
	f := fakes.NewReranker("tei", "m")
	defer f.Close()
	f.MaxClientBatch = 5
	s, _ := New(Config{API: "tei", URL: f.URL, Batch: 32})
	got, err := s.Score(context.Background(), "sync errors", passages(23))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 23 {
		t.Fatalf("%d scores", len(got))
	}
	before := f.Counter.Total()
	if _, err := s.Score(context.Background(), "passwords", passages(10)); err != nil {
		t.Fatal(err)
	}
	// 23 refused, then 11 refused, then 5 accepted: the client keeps 5.
	if n := f.Counter.Total() - before; n != 2 {
		t.Errorf("after learning the limit, 10 passages took %d requests, want 2 (batches of 5)", n)
	}
}

// TestBadAnswersAreErrors: a malformed answer (with a Doer that is not an
// *httpx.Client) is asked three times, then is an Item fault of the batch,
// which is split until the passages stand alone, each asked three times.
func TestBadAnswersAreErrors(t *testing.T) {
	cases := map[string]string{
		`[{"index":0,"score":1.0},{"index":0,"score":0.5}]`: "index 0 appears twice",
		`[{"index":5,"score":1.0},{"index":0,"score":0.5}]`: "index 5 out of range",
		`[{"index":0,"score":1e300},{"index":1,"score":0}]`: "not a finite float32",
		`[{"index":0,"score":null},{"index":1,"score":0}]`:  "lacks index or score",
		`{"error":"x"}`: "want [{\"index\",\"score\"}]",
	}
	for body, want := range cases {
		var n int
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n++
			io.WriteString(w, body)
		}))
		s, _ := New(Config{API: "tei", URL: srv.URL})
		_, err := s.Score(context.Background(), "q", []string{"a", "b"})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), want) || httpx.KindOf(err) != httpx.Item {
			t.Errorf("answer %s: err = %v, want an Item fault with %q", body, err, want)
		}
		if n != 9 {
			t.Errorf("answer %s: %d attempts, want 3 for the pair and 3 for each passage", body, n)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"Unauthorized","error_type":"Unhealthy"}`)
		}
	}))
	defer srv.Close()
	s, _ := New(Config{API: "tei", URL: srv.URL, APIKey: "wrong"})
	_, err := s.Score(context.Background(), "q", []string{"a"})
	if err == nil || !strings.Contains(err.Error(), "HTTP 401: Unauthorized") {
		t.Errorf("401: err = %v", err)
	}
}

func TestLexicalPrefersTheSource(t *testing.T) {
	got, _ := Lexical{}.Score(context.Background(), "reset a forgotten password", []string{
		"Use Forgot password on the sign-in page to reset a forgotten password.",
		"Storage quota exceeded banners.",
	})
	if got[0] <= got[1] {
		t.Errorf("scores %v", got)
	}
}

// longPassage is over a 512-token window by itself (fakes.Tokens: 4.5 bytes a token).
var longPassage = strings.Repeat("mitochondrial biogenesis in skeletal muscle ", 80)

// The teacher's failures, each as the real server words it, are classified
// through httpx.Classify: what no other query fixes is a Config fault with a
// hint (sent once, never retried item by item), a passage over the window is
// isolated and the rest of its list scored, and a window on our side cuts it
// so nothing is refused.
func TestTeacherFaultsAndWindow(t *testing.T) {
	ps := []string{"storage quota limits", longPassage, "quota exceeded errors", "sync storage"}
	cases := []struct {
		name     string
		api      string
		setup    func(f *fakes.Reranker)
		url      func(f *fakes.Reranker) string
		window   window.Cutter
		apiKey   string
		kind     httpx.Kind // of Score's error; 0: none
		msg      string     // in the error
		refused  []int      // ScorePartial's refused indices
		requests int64      // at most
	}{
		{name: "llama.cpp without --reranking: 501", api: "cohere",
			setup: func(f *fakes.Reranker) { f.NoRerank = true },
			kind:  httpx.Config, msg: "This server does not support reranking. Start it with `--reranking`", requests: 1},
		{name: "URL with /v1: 404 page not found", api: "cohere",
			url:  func(f *fakes.Reranker) string { return f.URL + "/v1" },
			kind: httpx.Config, msg: "check --teacher-url", requests: 1},
		{name: "llama.cpp 500 too large: isolated", api: "cohere",
			setup: func(f *fakes.Reranker) { f.Flavor, f.MaxTokens = "llamacpp", 512 },
			kind:  httpx.Item, msg: "input (", refused: []int{1}, requests: 6},
		{name: "llama.cpp with our 512 window: nothing refused", api: "cohere",
			setup:  func(f *fakes.Reranker) { f.Flavor, f.MaxTokens = "llamacpp", 512 },
			window: window.Cutter{MaxTokens: 512, Reserve: 8}, requests: 1},
		{name: "TEI route with our window", api: "tei",
			setup:  func(f *fakes.Reranker) { f.Flavor, f.MaxTokens = "llamacpp", 512 },
			window: window.Cutter{MaxTokens: 512, Reserve: 8}, requests: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := fakes.NewReranker(tc.api, "m")
			defer f.Close()
			if tc.setup != nil {
				tc.setup(f)
			}
			u := f.URL
			if tc.url != nil {
				u = tc.url(f)
			}
			hc := httpx.New(&httpx.Options{MaxRetries: 3, BaseDelay: time.Millisecond})
			s, err := New(Config{API: tc.api, URL: u, Model: "m", Batch: 8, Doer: hc, Window: tc.window, APIKey: tc.apiKey})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Score(context.Background(), "storage quota", ps)
			switch {
			case tc.kind == 0 && err != nil:
				t.Fatalf("err %v", err)
			case tc.kind != 0 && (httpx.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.msg)):
				t.Fatalf("err %v (kind %v), want kind %v with %q", err, httpx.KindOf(err), tc.kind, tc.msg)
			case tc.kind == 0 && len(got) != len(ps):
				t.Fatalf("%d scores", len(got))
			}
			if tc.kind == httpx.Config && !strings.Contains(err.Error(), "hint:") {
				t.Errorf("Config fault without a hint: %v", err)
			}
			if tc.refused != nil {
				scores, refused, err := s.ScorePartial(context.Background(), "storage quota", ps)
				if err != nil || len(scores) != len(ps) || len(refused) != len(tc.refused) {
					t.Fatalf("ScorePartial: %v, refused %v, want %v", err, refused, tc.refused)
				}
				for _, i := range tc.refused {
					if !strings.Contains(refused[i], "too large to process") {
						t.Errorf("refused[%d] = %q", i, refused[i])
					}
				}
				if scores[0] == 0 || scores[2] == 0 {
					t.Errorf("the other passages were not scored: %v", scores)
				}
			}
			if n := f.Counter.Total(); n > tc.requests+int64(len(tc.refused))*6 {
				t.Errorf("%d requests, want at most %d (an item or config answer is not retried)", n, tc.requests)
			}
		})
	}
}

// The TEI 401 names the flag that carries the key.
func TestTeacher401Hint(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":"Unauthorized","error_type":"Unhealthy"}`)
	}))
	defer srv.Close()
	s, _ := New(Config{API: "tei", URL: srv.URL, APIKey: "wrong"})
	_, err := s.Score(context.Background(), "q", []string{"a"})
	if httpx.KindOf(err) != httpx.Config || !strings.Contains(err.Error(), "--teacher-api-key") {
		t.Errorf("401: err = %v, want a Config fault naming --teacher-api-key", err)
	}
}

// The Cohere-style API cannot say whether its scores are probabilities
// (vLLM, Cohere) or raw logits (llama.cpp): the values tell.
func TestCohereScoreKindFromValues(t *testing.T) {
	for _, tc := range []struct{ flavor, want string }{{"", "relevance"}, {"llamacpp", "logits"}} {
		f := fakes.NewReranker("cohere", "m")
		f.Flavor = tc.flavor
		s, _ := New(Config{API: "cohere", URL: f.URL, Model: "m"})
		if _, err := s.Score(context.Background(), "storage quota", passages(5)); err != nil {
			t.Fatal(err)
		}
		if got := s.ScoreKind(); got != tc.want {
			t.Errorf("flavor %q: kind %q, want %q", tc.flavor, got, tc.want)
		}
		f.Close()
	}
}

// TestTeacherHostileAnswers: against the hostile stand-in, for every API,
// scores returned are finite: NaN (as Python writes it), scores past
// float32 (1e300), a wrong shape and a huge answer are malformed answers,
// asked again, and then fail only the passages of that answer while the
// server answers others well; a server that never answers well is a
// misconfiguration naming --teacher-api.
func TestTeacherHostileAnswers(t *testing.T) {
	for _, api := range APIs {
		f := fakes.NewReranker(api, "m", func(f *fakes.Reranker) {
			f.Fault = func(_ int64, body []byte) string {
				for _, m := range []string{"nan", "absurd", "malformed", "huge"} {
					if strings.Contains(string(body), "mode-"+m) {
						return m
					}
				}
				return ""
			}
		})
		hc := httpx.New(&httpx.Options{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Timeout: 20 * time.Second,
			Role: "teacher", Endpoints: []string{f.URL}})
		s, _ := New(Config{API: api, URL: f.URL, Model: "m", Doer: hc, Batch: 4})
		ps := s
		if _, err := s.Score(context.Background(), "q", passages(3)); err != nil {
			t.Fatalf("%s: %v", api, err)
		}
		for _, m := range []string{"nan", "absurd", "malformed", "huge"} {
			docs := []string{"passage a", "passage mode-" + m, "passage c"}
			scores, refused, err := ps.ScorePartial(context.Background(), "q", docs)
			if err != nil || len(refused) != 1 || refused[1] == "" {
				t.Errorf("%s %s: refused %v, err %v; want passage 1 refused alone", api, m, refused, err)
				continue
			}
			for i, x := range scores {
				if i != 1 && (math.IsNaN(float64(x)) || math.IsInf(float64(x), 0)) {
					t.Errorf("%s %s: score %d = %v", api, m, i, x)
				}
			}
		}
		f.Close()
	}
	f := fakes.NewReranker("tei", "m", func(f *fakes.Reranker) { f.Fault = func(int64, []byte) string { return "malformed" } })
	defer f.Close()
	hc := httpx.New(&httpx.Options{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Role: "teacher", Endpoints: []string{f.URL}})
	s, _ := New(Config{API: "tei", URL: f.URL, Model: "m", Doer: hc})
	_, err := s.Score(context.Background(), "q", passages(3))
	if httpx.KindOf(err) != httpx.Config || !strings.Contains(err.Error(), "--teacher-api") {
		t.Errorf("every answer malformed: %v, want a Config fault naming --teacher-api", err)
	}
}

// lexicalReference is the offline teacher as first written (maps of the
// passage's words and bigrams): Lexical.Score must give the same float32
// bit for bit, since stores and exports made before hold its scores.
func lexicalReference(query string, passages []string) []float32 {
	words := func(s string) []string {
		return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	}
	qw := words(query)
	uni, bi := map[string]bool{}, map[string]bool{}
	for i, w := range qw {
		uni[w] = true
		if i > 0 {
			bi[qw[i-1]+" "+w] = true
		}
	}
	out := make([]float32, len(passages))
	for i, p := range passages {
		pw := words(p)
		pu, pb := map[string]bool{}, map[string]bool{}
		for j, w := range pw {
			pu[w] = true
			if j > 0 {
				pb[pw[j-1]+" "+w] = true
			}
		}
		var s float32 = -6
		if len(uni) > 0 {
			n := 0
			for w := range uni {
				if pu[w] {
					n++
				}
			}
			s += 8 * float32(n) / float32(len(uni))
		}
		if len(bi) > 0 {
			n := 0
			for b := range bi {
				if pb[b] {
					n++
				}
			}
			s += 4 * float32(n) / float32(len(bi))
		}
		out[i] = s
	}
	return out
}

func TestLexicalMatchesReference(t *testing.T) {
	// Two vocabularies: ASCII text takes Score's byte path, the other the
	// Unicode one (K is the Kelvin sign, which lower-cases to ASCII k).
	vocabs := [][]string{
		{"the", "The", "cell", "CELL", "cell's", "p53", "ÉTÉ", "été", "a-b", "x", "", " ", ",", "\t", "naïve", "42", "ß", "K", "k"},
		{"the", "The", "cell", "CELL", "cell's", "p53", "a-b", "x", "k", "K", "", " ", ",", "\t", "\x00", "42", "Z9z", "@[`{"},
	}
	var vocab []string
	rng := rand.New(rand.NewPCG(7, 20))
	text := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(vocab[rng.IntN(len(vocab))])
			if rng.IntN(3) > 0 {
				b.WriteByte(' ')
			}
		}
		return b.String()
	}
	for q := range 1000 {
		vocab = vocabs[q%2]
		query := text(rng.IntN(12))
		ps := make([]string, 1+rng.IntN(8))
		for i := range ps {
			ps[i] = text(rng.IntN(40))
		}
		if q%50 == 0 {
			ps = append(ps, query, "") // the query itself, and nothing
		}
		got, err := Lexical{}.Score(context.Background(), query, ps)
		if err != nil {
			t.Fatal(err)
		}
		want := lexicalReference(query, ps)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("query %q passage %q: score %v, the reference gives %v", query, ps[i], got[i], want[i])
			}
		}
	}
}

func BenchmarkLexical(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string { return fmt.Sprintf("w%d", int(rng.ExpFloat64()*300)) }
	text := func(n int) string {
		ws := make([]string, n)
		for i := range ws {
			ws[i] = word()
		}
		return strings.Join(ws, " ")
	}
	query := text(10)
	ps := make([]string, 100)
	for i := range ps {
		ps[i] = text(90)
	}
	b.Run("now", func(b *testing.B) {
		for b.Loop() {
			Lexical{}.Score(context.Background(), query, ps)
		}
	})
	b.Run("reference", func(b *testing.B) {
		for b.Loop() {
			lexicalReference(query, ps)
		}
	})
}
