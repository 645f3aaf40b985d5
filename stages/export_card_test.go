package stages

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// Every value in the card's body is shown as written and never becomes
// markup: HTML, backticks, pipes, line breaks and a `---` in a model name,
// the query instruction, the licence or the corpus file name stay text on
// their own table row; the front matter stays valid YAML.
func TestCardEscapesHostileValues(t *testing.T) {
	hostile := "x`y`` <img src=x onerror=alert(1)> | *b* _i_ [l](javascript:x) &amp;\n---\n# h\r\n```\n<script>alert(2)</script>"
	cfg := &pipeline.Config{LLMModel: "m " + hostile, TeacherAPI: "tei", TeacherModel: "t " + hostile,
		QueryInstruction: "q " + hostile, CorpusLicense: "l " + hostile, Corpus: "/data/c " + strings.ReplaceAll(hostile, "/", "") + ".jsonl",
		MinTopPercentile: 25}
	cfg.EnsureDefaults()
	lay, err := layoutOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	thr := -4.222222328186035
	m := &Manifest{Generator: cfg.Generator(), Teacher: cfg.Teacher(), Fingerprint: cfg.Fingerprint(),
		Templates: map[string]string{"questions": "v1"}, FewShotPool: "abc",
		Targets: &dataset.Targets{Scores: 10, P1: -10.123456789, P99: 9.87654321, Min: -11.5, Max: 10.25, Threshold: &thr, Kept: 3}}
	card := string(datasetCard(cardInput{cfg: cfg, layout: lay, schema: lay.schema(map[string]string{}, cfg.ListSize),
		manifest: m, rows: map[string]int{"train": 2, "dev": 1}}))

	front, body, ok := strings.Cut(strings.TrimPrefix(card, "---\n"), "\n---\n")
	if !ok {
		t.Fatalf("no front matter:\n%s", card)
	}
	var meta struct {
		License string `yaml:"license"`
	}
	if err := yaml.Unmarshal([]byte(front), &meta); err != nil || meta.License != cfg.CorpusLicense {
		t.Errorf("front matter: licence %q, %v; want %q", meta.License, err, cfg.CorpusLicense)
	}
	for _, bad := range []string{"<img", "<script", "[l](javascript", "\n---", "\n# h", "\n```\n<"} {
		if strings.Contains(body, bad) {
			t.Errorf("the card's body holds %q raw", bad)
		}
	}
	inTable, rows := false, 0
	for _, line := range strings.Split(body, "\n") {
		switch {
		case line == "## Provenance":
			inTable = true
		case inTable && strings.HasPrefix(line, "## "):
			inTable = false
		case inTable && line != "":
			if line == "|---|---|" || line == "| | |" {
				continue
			}
			if !strings.HasPrefix(line, "| ") || !strings.HasSuffix(line, " |") {
				t.Errorf("a provenance row is broken: %q", line)
			}
			// Cells: every | not escaped by a backslash splits one.
			cells := 0
			for i := 1; i < len(line); i++ {
				if line[i] == '|' && line[i-1] != '\\' {
					cells++
				}
			}
			if cells != 2 { // the separators after the first
				t.Errorf("a provenance row has %d unescaped |, want 3: %q", cells+1, line)
			}
			if strings.Count(line, "`")%2 != strings.Count(line, "\\`")%2 {
				t.Errorf("a provenance row has an unpaired backtick: %q", line)
			}
			rows++
		}
	}
	for _, want := range []string{"| query generator | m x\\`y\\`\\` &lt;img src=x onerror=alert(1)&gt; \\| \\*b\\* \\_i\\_ \\[l\\](javascript:x) &amp;amp;", "top score ≥ p25 = -4.222 |",
		"p1 -10.12, p99 9.877, min -11.5, max 10.25", `\\n---\\n\# h\\r\\n`} {
		if !strings.Contains(body, want) {
			t.Errorf("the card's body does not hold %q:\n%s", want, body)
		}
	}
	// Plain values keep their code spans (an ordinary card is unchanged).
	plain := mdCode("meta-llama/Llama-3.1-8B-Instruct")
	if plain != "`meta-llama/Llama-3.1-8B-Instruct`" {
		t.Errorf("plain value written as %q", plain)
	}
}
