package stages

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// cardInput is what the dataset card says, gathered by the export.
type cardInput struct {
	cfg      *pipeline.Config
	layout   layout
	schema   *arrow.Schema
	scores   string // "", raw or normalised
	manifest *Manifest
	rows     map[string]int
	corpus   dataset.CorpusMeta
}

// cardFormats orders the formats of an export for the card: the first is
// the default config (Parquet, then Arrow, then JSONL).
func cardFormats(formats []string) []string {
	var out []string
	for _, f := range []string{"parquet", "arrow", "jsonl"} {
		for _, g := range formats {
			if g == f {
				out = append(out, f)
			}
		}
	}
	return out
}

// datasetCard renders OUT/README.md, a Hugging Face dataset card: YAML
// `configs` naming each split's files per format (the first format is the
// default config, so load_dataset(OUT) loads it), `dataset_info` with the
// features and the rows of each split, then the provenance (generator,
// teacher, prompt versions, normalisation, percentiles, counts, corpus and
// licence) for a person. Splits without rows are left out of the configs
// (an empty JSONL file cannot be typed). The card holds nothing that
// changes from one export of the same store to the next.
func datasetCard(in cardInput) []byte {
	var b bytes.Buffer
	cfg, m := in.cfg, in.manifest
	q := strconv.Quote
	splits := []string{}
	for _, s := range []string{"train", "dev"} {
		if in.rows[s] > 0 {
			splits = append(splits, s)
		}
	}
	if len(splits) == 0 {
		splits = []string{"train"}
	}
	formats := cardFormats(cfg.Formats)

	b.WriteString("---\n")
	fmt.Fprintf(&b, "pretty_name: %s\n", q("synthq "+cfg.Layout+" export"))
	if cfg.CorpusLicense != "" {
		fmt.Fprintf(&b, "license: %s\n", q(cfg.CorpusLicense))
	}
	b.WriteString("task_categories:\n- text-retrieval\ntags:\n- synthq\n- synthetic\n- knowledge-distillation\n")
	b.WriteString("configs:\n")
	for i, f := range formats {
		fmt.Fprintf(&b, "- config_name: %s\n", f)
		if i == 0 {
			b.WriteString("  default: true\n")
		}
		b.WriteString("  data_files:\n")
		for _, s := range splits {
			fmt.Fprintf(&b, "  - split: %s\n    path: %s\n", s, q(in.layout.path(s, f)))
		}
	}
	b.WriteString("dataset_info:\n")
	for _, f := range formats {
		fmt.Fprintf(&b, "- config_name: %s\n  features:\n", f)
		yamlFields(&b, in.schema.Fields(), "  ")
		b.WriteString("  splits:\n")
		for _, s := range splits {
			fmt.Fprintf(&b, "  - name: %s\n    num_examples: %d\n", s, in.rows[s])
		}
	}
	b.WriteString("---\n\n")

	fmt.Fprintf(&b, "# synthq %s export\n\n", cfg.Layout)
	b.WriteString("Synthetic queries for passages of a corpus, each with a list of passages scored by a cross-encoder teacher, " +
		"for distilling the teacher into a dense retriever. Written by synthq " + Version + "; `manifest.json` beside this card " +
		"holds every setting and count.\n\n")
	b.WriteString("| split | lists | files |\n|---|---|---|\n")
	for _, s := range []string{"train", "dev"} {
		var files []string
		for _, f := range formats {
			files = append(files, "`"+in.layout.path(s, f)+"`")
		}
		fmt.Fprintf(&b, "| %s | %d | %s |\n", s, in.rows[s], strings.Join(files, ", "))
	}
	b.WriteString("\n## Provenance\n\n| | |\n|---|---|\n")
	// Every value is escaped (mdCode, mdText): a model name, instruction,
	// licence or file name is shown as written and never becomes markup.
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "| %s | %s |\n", k, v)
		}
	}
	row("query generator", mdCode(m.Generator))
	row("teacher", mdCode(m.Teacher))
	if m.TeacherScoreNote != "" {
		row("teacher scores", m.TeacherScoreNote) // synthq's own words (scoreNotes), not a value given to it
	}
	var tv []string
	for _, k := range pipeline.SortedKeys(m.Templates) {
		tv = append(tv, mdText(k)+" "+mdCode(m.Templates[k]))
	}
	row("prompt template versions", strings.Join(tv, ", "))
	row("few-shot pool", mdCode(m.FewShotPool))
	row("query types", mdText(strings.Join(cfg.QueryTypes, ", ")))
	row("retrievers", mdText(strings.Join(cfg.Retrievers, ", "))+fmt.Sprintf(" (%d candidates, round trip top %d)", cfg.Candidates, cfg.RoundtripK))
	row("layout", mdCode(cfg.Layout))
	switch in.scores {
	case ScoresRaw:
		row("scores in this layout", "raw teacher scores, as the teacher returned them")
	case ScoresNormalised:
		row("scores in this layout", "normalised to [0, 1] ("+mdCode("--norm "+cfg.Norm)+")")
	default:
		row("scores in this layout", "`teacher_scores` normalised ("+mdCode("--norm "+cfg.Norm)+"), `teacher_raw` as returned")
	}
	if t := m.Targets; t != nil {
		row("percentiles of all candidate scores", fmt.Sprintf("p1 %s, p99 %s, min %s, max %s (%d scores)",
			cardScore(t.P1), cardScore(t.P99), cardScore(t.Min), cardScore(t.Max), t.Scores))
		if t.Threshold != nil {
			row("top-score filter", fmt.Sprintf("top score ≥ p%g = %s", cfg.MinTopPercentile, cardScore(*t.Threshold)))
		}
		row("lists kept by the filters", strconv.Itoa(t.Kept))
	}
	row("list size", strconv.Itoa(cfg.ListSize))
	row("source passage ranked first by the teacher", strconv.FormatBool(cfg.RequireSourceTop1))
	row("dev split", fmt.Sprintf("%g of source passages (seed %d)", cfg.DevFraction, cfg.Seed))
	if cfg.QueryInstruction != "" {
		row("query instruction", mdCode(cfg.QueryInstruction))
	}
	if cfg.Corpus != "" {
		row("corpus file", mdCode(filepath.Base(cfg.Corpus)))
	}
	if in.corpus.SHA256 != "" {
		row("corpus sha256", mdCode(in.corpus.SHA256))
		row("corpus passages", strconv.Itoa(in.corpus.Passages))
	}
	if cfg.CorpusLicense != "" {
		row("corpus licence", mdText(cfg.CorpusLicense))
	} else {
		row("corpus licence", "not given (`--corpus-license`)")
	}
	row("config fingerprint", mdCode(m.Fingerprint))
	if ex := m.Stages["export"].Counts; len(ex) > 0 {
		b.WriteString("\n## Counts of the export\n\n| count | value |\n|---|---|\n")
		for _, k := range pipeline.SortedKeys(ex) {
			fmt.Fprintf(&b, "| `%s` | %d |\n", k, ex[k])
		}
	}
	b.WriteString("\n## Load\n\n```python\nfrom datasets import load_dataset\n\n")
	fmt.Fprintf(&b, "ds = load_dataset(\"path/to/this/folder\")  # the %s files", formats[0])
	if len(formats) > 1 {
		fmt.Fprintf(&b, "; or name=%s", q(formats[1]))
	}
	b.WriteString("\n```\n")
	return b.Bytes()
}

// cardScore formats a teacher score for a person: four significant digits
// (-4.222 rather than -4.222222328186035; the manifest keeps every digit).
func cardScore(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// visible replaces line breaks and other control characters of a value
// with their escapes (\n, \r, \t, \u0085…), so that a value stays on its
// table row and cannot start a block (a heading, a `---` rule, a fence).
func visible(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdText is v as plain text in a Markdown table cell: line breaks shown
// as escapes, Markdown's inline markup characters backslash-escaped and
// HTML's (<, >, &) written as entities, so no link, image, emphasis, code
// or HTML tag can come of it.
func mdText(v string) string {
	var b strings.Builder
	for _, r := range visible(v) {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\\', '`', '*', '_', '[', ']', '|', '~', '!', '#', '$':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdCode is v as a Markdown code span in a table cell, when v is plain
// (no character that Markdown or HTML reads inside or around a code span:
// backtick, |, \\, <, >, &, a line break or other control character);
// any other value is written as escaped text (mdText), which every
// Markdown renderer shows as written, HTML-sanitising or not.
func mdCode(v string) string {
	if strings.ContainsAny(v, "`|\\<>&") || visible(v) != v {
		return mdText(v)
	}
	return "`" + v + "`"
}

// yamlFields writes Arrow fields as dataset_info.features, the way the
// datasets library writes them (dtype, list, struct).
func yamlFields(b *bytes.Buffer, fields []arrow.Field, indent string) {
	for _, f := range fields {
		fmt.Fprintf(b, "%s- name: %s\n", indent, f.Name)
		yamlType(b, f.Type, indent+"  ", "dtype")
	}
}

func yamlType(b *bytes.Buffer, dt arrow.DataType, indent, key string) {
	switch t := dt.(type) {
	case *arrow.ListType:
		elem := t.Elem()
		if st, ok := elem.(*arrow.StructType); ok {
			fmt.Fprintf(b, "%slist:\n", indent)
			yamlFields(b, st.Fields(), indent)
			return
		}
		fmt.Fprintf(b, "%slist: %s\n", indent, dtypeName(elem))
	case *arrow.StructType:
		fmt.Fprintf(b, "%sstruct:\n", indent)
		yamlFields(b, t.Fields(), indent)
	default:
		fmt.Fprintf(b, "%s%s: %s\n", indent, key, dtypeName(dt))
	}
}

// dtypeName is the datasets Value dtype of a primitive Arrow type.
func dtypeName(dt arrow.DataType) string {
	switch dt.ID() {
	case arrow.STRING:
		return "string"
	case arrow.FLOAT32:
		return "float32"
	case arrow.FLOAT64:
		return "float64"
	case arrow.INT32:
		return "int32"
	case arrow.INT64:
		return "int64"
	case arrow.BOOL:
		return "bool"
	}
	return dt.Name()
}
