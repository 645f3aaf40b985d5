package dataset

// Why a query or list is dropped: each is counted as "drop_<reason>" in the
// stage counts, the manifest and stats, and stored in Query.Drop or
// Mined.Drop where the record stays.
const (
	// Filter (besides the parser's reasons, prompts.Drop*).
	DropNotGenerated     = "not_generated"
	DropLLMFailed        = "llm_failed"
	DropDuplicatePassage = "duplicate_in_passage"
	DropDuplicateCorpus  = "duplicate_in_corpus"
	// DropDuplicateAcrossShards: another shard's passage asked the query
	// first (export --merge).
	DropDuplicateAcrossShards = "duplicate_in_corpus_across_shards"

	// Mine.
	DropRoundtrip     = "roundtrip_miss"
	DropFewCandidates = "few_candidates"
	DropEmbedFailed   = "query_embedding_failed"
	// RemovedDuplicateDoc counts candidates removed as duplicates of the
	// source passage (not a drop of the query).
	RemovedDuplicateDoc = "removed_duplicate_of_source"

	// Export (the targets).
	DropSourceNotTop1 = "teacher_source_not_top1"
	DropLowTopScore   = "teacher_low_top_score"
	// DropShorterThanListSize: a list shorter than --list-size in a layout
	// that needs full lists (sentence-transformers, paper).
	DropShorterThanListSize = "shorter_than_list_size"
	// DropInvalidRecord: a stored labelled list that fails its Check
	// (lists of different lengths, a score not finite); recorded as a
	// failure naming its key.
	DropInvalidRecord = "invalid_record"
)
