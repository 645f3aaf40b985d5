package dataset

import "github.com/synthq/synthq/pipeline"

// The store's keys, one builder per table (the prefixes are pipeline's).
// Every key built from an id stays under Badger's limit because ids are at
// most 512 bytes long (stages.MaxIDBytes) and fingerprints are fixed-size.

// DocKey is the key of a passage (doc/<id>).
func DocKey(id string) string { return pipeline.PrefixDoc + id }

// AnswerKey is the key of a stored LLM answer (llm/<request fingerprint>).
func AnswerKey(fp string) string { return pipeline.PrefixLLM + fp }

// HitsKey is the key of a first-pass run's hit list for a query text
// (hits/<Fingerprint(runFP, query)>).
func HitsKey(runFP, query string) string {
	return pipeline.PrefixHits + pipeline.Fingerprint(runFP, query)
}

// ScoreKey is the key of the teacher's scores for a query text
// (score/<Fingerprint(teacherFP, query)>).
func ScoreKey(teacherFP, query string) string {
	return pipeline.PrefixScore + pipeline.Fingerprint(teacherFP, query)
}

// VecKey is the key of a text's unit vector under an embedding model
// (vec/<Fingerprint("vec/v1", model, text)>), text as sent (prefix included,
// cut to the window).
func VecKey(model, text string) string {
	return pipeline.PrefixVec + pipeline.Fingerprint("vec/v1", model, text)
}

// QueryKey is the key of a query slot's query record (q/<qid>).
func QueryKey(qid string) string { return pipeline.PrefixQuery + qid }

// MinedKey is the key of a query slot's candidate list (m/<qid>).
func MinedKey(qid string) string { return pipeline.PrefixMined + qid }

// LabelKey is the key of a query slot's labelled list (l/<qid>).
func LabelKey(qid string) string { return pipeline.PrefixLabel + qid }

// FailKey is where the permanent failure of a unit of work is recorded
// (fail/<unit>): unit is the LLM request fingerprint of a query slot, the
// ScoreKey of a query, or an embed-passage fingerprint.
func FailKey(unit string) string { return pipeline.PrefixFail + unit }

// The run's facts (meta/…).
const (
	MetaConfig    = pipeline.PrefixMeta + "config"    // the run's settings (pipeline.Config)
	MetaCorpus    = pipeline.PrefixMeta + "corpus"    // CorpusMeta
	MetaSelection = pipeline.PrefixMeta + "selection" // the passages asked about
	MetaTargets   = pipeline.PrefixMeta + "targets"   // Targets of the last export
	MetaEndpoints = pipeline.PrefixMeta + "endpoints" // the endpoints' figures
	MetaExport    = pipeline.PrefixMeta + "export"    // the last export's files
)
