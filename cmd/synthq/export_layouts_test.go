package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/ipc"
	"gopkg.in/yaml.v3"
)

// Each layout is checked the way its consumer reads it, as the consumers'
// documentation and loaders state the format: field names and nesting, list
// lengths, score scale, and how a JSON reader types the numbers. The
// consumers' code is not in this repository.

// corpusPassages reads the test corpus: title and text of each id.
func corpusPassages(t *testing.T) (titles, texts map[string]string) {
	t.Helper()
	titles, texts = map[string]string{}, map[string]string{}
	for _, p := range readJSONL[struct {
		ID    string `json:"_id"`
		Title string `json:"title"`
		Text  string `json:"text"`
	}](t, corpus) {
		titles[p.ID], texts[p.ID] = p.Title, p.Text
	}
	return titles, texts
}

// jsonLines decodes a JSONL file keeping numbers as written.
func jsonLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		var v map[string]any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%s line %d: %v", path, len(out)+1, err)
		}
		out = append(out, v)
	}
	return out
}

// floatKeys are the JSON fields that hold teacher scores.
var floatKeys = map[string]bool{"teacher_scores": true, "teacher_raw": true, "label": true,
	"pos_scores": true, "neg_scores": true, "rankt5_score": true, "score": true}

// checkFloatTyping fails when a score is written so that a JSON reader
// (pandas, pyarrow, datasets: typed from the first chunk) would read it as
// an integer: 1 instead of 1.0.
// layoutLines reads a JSONL export, checks its float typing and, when want
// ≥ 0, that it has want lines.
func layoutLines(t *testing.T, path string, want int) []map[string]any {
	t.Helper()
	lines := jsonLines(t, path)
	checkFloatTyping(t, path, lines)
	if want >= 0 && len(lines) != want {
		t.Fatalf("%s: %d lines, want %d", path, len(lines), want)
	}
	return lines
}

func checkFloatTyping(t *testing.T, path string, lines []map[string]any) {
	t.Helper()
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(k, x)
			}
		case []any:
			for _, x := range v {
				walk(key, x)
			}
		case json.Number:
			if floatKeys[key] && !strings.ContainsAny(string(v), ".eE") {
				t.Fatalf("%s: %s holds %s, which a JSON reader types as an integer", path, key, v)
			}
		}
	}
	for _, l := range lines {
		walk("", l)
	}
}

func num(t *testing.T, v any) float32 {
	t.Helper()
	f, err := v.(json.Number).Float64()
	if err != nil {
		t.Fatal(err)
	}
	return float32(f)
}

func nums(t *testing.T, v any) []float32 {
	var out []float32
	for _, x := range v.([]any) {
		out = append(out, num(t, x))
	}
	return out
}

func strList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func keysOf(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

func sorted(ss ...string) []string { slices.Sort(ss); return ss }

func TestExportConsumerFormats(t *testing.T) {
	run, store := offlineStore(t)
	train, dev := checkOutput(t, run)
	want := map[string][]row{"train": train, "dev": dev}
	titles, texts := corpusPassages(t)
	const listSize = 6 // offlineStore's --list-size
	short := 0
	full := map[string][]row{} // the lists of exactly --list-size, which the paper and sentence-transformers layouts keep
	for split, rows := range want {
		for _, r := range rows {
			if len(r.DocIDs) < listSize {
				short++
			} else {
				full[split] = append(full[split], r)
			}
		}
	}
	if short == 0 {
		t.Fatal("test data should hold lists shorter than the list size")
	}

	// The paper's loader reads passages[:list_length] of every line and
	// reshapes them to (queries, list_length): every list must be full.
	t.Run("paper", func(t *testing.T) {
		out := export(t, store, "--layout", "paper")
		got := 0
		for split := range want {
			lines := layoutLines(t, filepath.Join(out, split+".jsonl"), -1)
			i := 0
			for _, r := range full[split] {
				l := lines[i]
				i++
				if !slices.Equal(keysOf(l), sorted("query", "qid", "passages")) || l["qid"] != r.QID || l["query"] != r.Query {
					t.Fatalf("%s line %d: keys %v, qid %v", split, i, keysOf(l), l["qid"])
				}
				ps := l["passages"].([]any)
				if len(ps) != listSize {
					t.Fatalf("%s line %d: %d passages, the scripts reshape to exactly %d", split, i, len(ps), listSize)
				}
				prev := float32(2)
				for j, p := range ps {
					p := p.(map[string]any)
					id := p["docid"].(string)
					s := num(t, p["rankt5_score"])
					if !slices.Equal(keysOf(p), sorted("docid", "text", "rankt5_score")) || id != r.DocIDs[j] {
						t.Fatalf("%s line %d passage %d: %v", split, i, j, p)
					}
					if p["text"] != texts[id] {
						t.Fatalf("%s line %d passage %d: text %q, want the passage text without its title %q", split, i, j, p["text"], texts[id])
					}
					if s < 0 || s > 1 || s > prev || s != r.Scores[j] {
						t.Fatalf("%s line %d passage %d: rankt5_score %v, want %v in [0, 1], best first", split, i, j, s, r.Scores[j])
					}
					prev = s
				}
			}
			if i != len(lines) {
				t.Fatalf("%s: %d lines, want the %d full lists", split, len(lines), i)
			}
			got += i
		}
		if m := manifestOf(t, out); m.Stages["export"].Counts["drop_shorter_than_list_size"] != int64(short) {
			t.Errorf("drop_shorter_than_list_size %d, want %d", m.Stages["export"].Counts["drop_shorter_than_list_size"], short)
		}
	})

	// FlagEmbedding's loader reads every .json/.jsonl file of the folder it
	// is given; it applies softmax(teacher_scores) with no temperature (raw
	// scores by default); it formats `prompt` into each query.
	t.Run("flagembedding", func(t *testing.T) {
		const instr = "Represent this sentence for searching relevant passages: "
		for _, tc := range []struct {
			args   []string
			prompt string
			raw    bool
		}{
			{nil, "", true},
			{[]string{"--query-instruction", instr}, instr, true},
			{[]string{"--scores", "normalised"}, "", false},
		} {
			out := export(t, store, append([]string{"--layout", "flagembedding"}, tc.args...)...)
			for split, rows := range want {
				dir := filepath.Join(out, split)
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if n := e.Name(); (strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".jsonl")) && n != split+".jsonl" {
						t.Errorf("%s/ holds %s: the loader would read it as %s data", split, n, split)
					}
				}
				lines := layoutLines(t, filepath.Join(dir, split+".jsonl"), len(rows))
				for i, r := range rows {
					l := lines[i]
					scores := r.Scores
					if tc.raw {
						scores = r.Raw
					}
					if !slices.Equal(keysOf(l), sorted("query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "type")) {
						t.Fatalf("%v: keys %v", tc.args, keysOf(l))
					}
					if l["query"] != r.Query || l["prompt"] != tc.prompt || l["type"] != "normal" ||
						!slices.Equal(strList(l["pos"]), r.Texts[:1]) || !slices.Equal(strList(l["neg"]), r.Texts[1:]) ||
						!slices.Equal(nums(t, l["pos_scores"]), scores[:1]) || !slices.Equal(nums(t, l["neg_scores"]), scores[1:]) {
						t.Fatalf("%v: %s line %d: %v", tc.args, split, i+1, l)
					}
				}
			}
			for _, stray := range []string{"train.jsonl", "dev.jsonl"} {
				if _, err := os.Stat(filepath.Join(out, stray)); err == nil {
					t.Errorf("%s written beside the split folders", stray)
				}
			}
		}
	})

	// Tevatron's distillation dataset reads query, positive_passages and
	// negative_passages, each passage's title and text (joined with a space)
	// and score.
	t.Run("tevatron", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			raw  bool
		}{{nil, false}, {[]string{"--scores", "raw"}, true}} {
			out := export(t, store, append([]string{"--layout", "tevatron", "--format", "jsonl,parquet,arrow"}, tc.args...)...)
			for split, rows := range want {
				lines := layoutLines(t, filepath.Join(out, split+".jsonl"), len(rows))
				for i, r := range rows {
					l := lines[i]
					scores := r.Scores
					if tc.raw {
						scores = r.Raw
					}
					if !slices.Equal(keysOf(l), sorted("query_id", "query", "positive_passages", "negative_passages")) || l["query_id"] != r.QID || l["query"] != r.Query {
						t.Fatalf("%s line %d: %v", split, i+1, keysOf(l))
					}
					pos, neg := l["positive_passages"].([]any), l["negative_passages"].([]any)
					if len(pos) != 1 || len(neg) != len(r.DocIDs)-1 {
						t.Fatalf("%s line %d: %d positives, %d negatives", split, i+1, len(pos), len(neg))
					}
					for j, p := range append(pos, neg...) {
						p := p.(map[string]any)
						id := p["docid"].(string)
						if !slices.Equal(keysOf(p), sorted("docid", "title", "text", "score")) || id != r.DocIDs[j] ||
							p["title"] != titles[id] || p["text"] != texts[id] || p["title"].(string)+" "+p["text"].(string) != r.Texts[j] ||
							num(t, p["score"]) != scores[j] {
							t.Fatalf("%v %s line %d passage %d: %v", tc.args, split, i+1, j, p)
						}
					}
					if pos[0].(map[string]any)["docid"] != r.Source {
						t.Fatalf("%s line %d: positive is not the source passage", split, i+1)
					}
				}
				if n := countParquet(t, filepath.Join(out, split+".parquet")); n != len(rows) {
					t.Errorf("%s.parquet: %d rows, want %d", split, n, len(rows))
				}
				f, err := os.Open(filepath.Join(out, split+".arrow"))
				if err != nil {
					t.Fatal(err)
				}
				rd, err := ipc.NewReader(f)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for rd.Next() {
					n += int(rd.Record().NumRows())
				}
				rd.Release()
				f.Close()
				if n != len(rows) {
					t.Errorf("%s.arrow: %d rows, want %d", split, n, len(rows))
				}
			}
		}
	})

	// sentence-transformers reads `label` as the teacher scores, positive
	// first; --scores raw writes the teacher's own.
	t.Run("sentence-transformers raw", func(t *testing.T) {
		out := export(t, store, "--layout", "sentence-transformers", "--format", "jsonl", "--scores", "raw")
		for split := range want {
			lines := layoutLines(t, filepath.Join(out, split+".jsonl"), -1)
			for i, r := range full[split] {
				if got := nums(t, lines[i]["label"]); !slices.Equal(got, r.Raw) {
					t.Fatalf("%s line %d: label %v, want raw %v", split, i+1, got, r.Raw)
				}
			}
		}
	})

	t.Run("listwise floats", func(t *testing.T) {
		out := export(t, store, "--format", "jsonl")
		for _, split := range []string{"train", "dev"} {
			path := filepath.Join(out, split+".jsonl")
			checkFloatTyping(t, path, jsonLines(t, path))
		}
	})

	t.Run("dataset card", func(t *testing.T) {
		for _, tc := range []struct {
			args    []string
			def     string
			configs []string
		}{
			{[]string{"--format", "arrow,parquet,jsonl", "--corpus-license", "cc-by-4.0"}, "parquet", []string{"parquet", "arrow", "jsonl"}},
			{[]string{"--layout", "sentence-transformers"}, "parquet", []string{"parquet", "arrow"}},
			{[]string{"--layout", "flagembedding"}, "jsonl", []string{"jsonl"}},
			{[]string{"--layout", "paper"}, "jsonl", []string{"jsonl"}},
			{[]string{"--layout", "tevatron", "--format", "jsonl,arrow"}, "arrow", []string{"arrow", "jsonl"}},
		} {
			out := export(t, store, tc.args...)
			checkCard(t, out, tc.def, tc.configs, slices.Contains(tc.args, "cc-by-4.0"))
		}
	})
}

// datasetCard is the YAML header of OUT/README.md, the fields Hugging Face
// datasets and the Hub read.
type datasetCard struct {
	License string `yaml:"license"`
	Configs []struct {
		ConfigName string `yaml:"config_name"`
		Default    bool   `yaml:"default"`
		DataFiles  []struct {
			Split string `yaml:"split"`
			Path  string `yaml:"path"`
		} `yaml:"data_files"`
	} `yaml:"configs"`
	DatasetInfo []struct {
		ConfigName string           `yaml:"config_name"`
		Features   []map[string]any `yaml:"features"`
		Splits     []struct {
			Name        string `yaml:"name"`
			NumExamples int    `yaml:"num_examples"`
		} `yaml:"splits"`
	} `yaml:"dataset_info"`
}

// checkCard reads OUT/README.md as datasets does: one default config per
// card, every data file present, split names datasets accepts, features
// naming the files' columns, and the row counts of each split.
func checkCard(t *testing.T, out, def string, configs []string, license bool) {
	t.Helper()
	text := readFile(t, filepath.Join(out, "README.md"))
	front, body, ok := strings.Cut(strings.TrimPrefix(text, "---\n"), "\n---\n")
	if !strings.HasPrefix(text, "---\n") || !ok {
		t.Fatalf("README.md has no YAML header:\n%s", text)
	}
	var card datasetCard
	if err := yaml.Unmarshal([]byte(front), &card); err != nil {
		t.Fatalf("card YAML: %v\n%s", err, front)
	}
	m := manifestOf(t, out)
	var names []string
	for i, c := range card.Configs {
		names = append(names, c.ConfigName)
		if c.Default != (c.ConfigName == def) {
			t.Errorf("config %s: default %v, want the default to be %s", c.ConfigName, c.Default, def)
		}
		info := card.DatasetInfo[i]
		if info.ConfigName != c.ConfigName {
			t.Fatalf("dataset_info %d is %s, config %s", i, info.ConfigName, c.ConfigName)
		}
		var features []string
		for _, f := range info.Features {
			features = append(features, f["name"].(string))
		}
		for j, df := range c.DataFiles {
			if !regexp.MustCompile(`^\w+(\.\w+)*$`).MatchString(df.Split) {
				t.Errorf("split name %q is not one datasets accepts", df.Split)
			}
			p := filepath.Join(out, filepath.FromSlash(df.Path))
			if _, err := os.Stat(p); err != nil {
				t.Errorf("config %s split %s: %v", c.ConfigName, df.Split, err)
				continue
			}
			if sp := info.Splits[j]; sp.Name != df.Split || int64(sp.NumExamples) != m.Rows[df.Split] {
				t.Errorf("config %s: split %+v, manifest has %d rows", c.ConfigName, sp, m.Rows[df.Split])
			}
			var cols []string
			switch c.ConfigName {
			case "jsonl":
				cols = keysOf(jsonLines(t, p)[0])
				features = sorted(features...)
			case "arrow":
				f, _ := os.Open(p)
				rd, err := ipc.NewReader(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, fl := range rd.Schema().Fields() {
					cols = append(cols, fl.Name)
				}
				rd.Release()
				f.Close()
			default:
				continue // Parquet is read by the interop test
			}
			if !slices.Equal(cols, features) {
				t.Errorf("config %s: features %v, file columns %v", c.ConfigName, features, cols)
			}
		}
	}
	if !slices.Equal(names, configs) {
		t.Errorf("configs %v, want %v", names, configs)
	}
	for _, s := range []string{m.Generator, m.Teacher, m.Fingerprint, "corpus.jsonl"} {
		if !strings.Contains(body, s) {
			t.Errorf("card body does not name %q", s)
		}
	}
	if license != (card.License == "cc-by-4.0") {
		t.Errorf("license %q", card.License)
	}
}

// The export is one set: a second export replaces the first as a whole,
// leaving none of its files; a failed one leaves the first as it was. The
// user's files beside it (written with --force, see TestOutRefusesForeignFiles)
// stay whatever happens.
func TestExportIsOneSet(t *testing.T) {
	_, store := offlineStore(t)
	out := t.TempDir()
	exportTo := func(args ...string) (int, string) {
		return synthq(t, context.Background(), append([]string{"export", "--store", store, "--out", out, "--quiet", "--force"}, args...)...)
	}
	snapshot := func() map[string]string {
		got := map[string]string{}
		filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(out, p)
				got[filepath.ToSlash(rel)] = readFile(t, p)
			}
			return nil
		})
		return got
	}
	names := func(m map[string]string) []string {
		var n []string
		for k := range m {
			n = append(n, k)
		}
		slices.Sort(n)
		return n
	}
	// Files synthq does not write stay whatever happens.
	os.WriteFile(filepath.Join(out, "report.html"), []byte("<html>"), 0o644)
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644)
	os.MkdirAll(filepath.Join(out, "train"), 0o755)
	os.WriteFile(filepath.Join(out, "train", "mine.txt"), []byte("mine"), 0o644)
	user := []string{"notes.txt", "report.html", "train/mine.txt"}

	steps := []struct {
		args []string
		want []string
	}{
		{[]string{"--format", "arrow,parquet"}, []string{"README.md", "dev.arrow", "dev.parquet", "manifest.json", "train.arrow", "train.parquet"}},
		{[]string{"--format", "jsonl"}, []string{"README.md", "dev.jsonl", "manifest.json", "train.jsonl"}},
		{[]string{"--layout", "flagembedding"}, []string{"README.md", "dev/dev.jsonl", "manifest.json", "train/train.jsonl"}},
		{[]string{"--layout", "tevatron", "--format", "parquet"}, []string{"README.md", "dev.parquet", "manifest.json", "train.parquet"}},
	}
	for _, s := range steps {
		if code, msg := exportTo(s.args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", s.args, code, msg)
		}
		want := sorted(append(slices.Clone(s.want), user...)...)
		if got := names(snapshot()); !slices.Equal(got, want) {
			t.Errorf("after export %v: files %v, want %v", s.args, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "dev")); err == nil {
		t.Error("the empty dev/ folder of the flagembedding export is still there")
	}

	// A target that cannot be replaced fails the export before anything
	// moves: the previous set is untouched and nothing is left half-written.
	before := snapshot()
	os.Mkdir(filepath.Join(out, "dev.jsonl"), 0o755)
	os.WriteFile(filepath.Join(out, "dev.jsonl", "x"), nil, 0o644)
	code, msg := exportTo("--layout", "listwise", "--format", "jsonl,arrow")
	if code == 0 || !strings.Contains(msg, "dev.jsonl") {
		t.Fatalf("export onto a directory: exit %d: %s", code, msg)
	}
	after := snapshot()
	delete(after, "dev.jsonl/x")
	for name, content := range before {
		if after[name] != content {
			t.Errorf("failed export changed %s", name)
		}
	}
	if !slices.Equal(names(after), names(before)) {
		t.Errorf("failed export left %v, had %v", names(after), names(before))
	}
}
