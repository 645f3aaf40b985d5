package adapter

import "strconv"

// Summary is what adapter.json and the safetensors metadata say about a
// trained adapter: what it applies to, how it was trained, on what, and
// how it did on the dev lists before (identity) and after.
type Summary struct {
	EmbedModel      string  `json:"embed_model"`
	Dims            int     `json:"dims"`
	QueryPrefix     string  `json:"query_prefix"`
	PassagePrefix   string  `json:"passage_prefix"`
	Loss            string  `json:"loss"`
	Rank            int     `json:"rank"` // 0: full matrix
	LR              float64 `json:"lr"`
	BatchSize       int     `json:"batch_size"`
	Seed            uint64  `json:"seed"`
	Epochs          int     `json:"epochs"`     // epochs run
	BestEpoch       int     `json:"best_epoch"` // the one kept (0: the identity)
	Stopped         string  `json:"stopped"`
	TrainLists      int     `json:"train_lists"`
	DevLists        int     `json:"dev_lists"`
	DataFingerprint string  `json:"data_fingerprint"`
	Before          Metrics `json:"dev_before"`
	After           Metrics `json:"dev_after"`
	Path            string  `json:"path,omitempty"` // where adapt wrote it (in the store's record only)
}

// Record is adapter.json: the summary and the training curve.
type Record struct {
	Summary
	Curve []Epoch `json:"curve"`
}

// Metadata is the summary as the safetensors __metadata__ map of strings.
func (s Summary) Metadata() map[string]string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	return map[string]string{
		"format":            "synthq-query-adapter/v1",
		"embed_model":       s.EmbedModel,
		"dims":              strconv.Itoa(s.Dims),
		"query_prefix":      s.QueryPrefix,
		"passage_prefix":    s.PassagePrefix,
		"loss":              s.Loss,
		"rank":              strconv.Itoa(s.Rank),
		"lr":                f(s.LR),
		"batch_size":        strconv.Itoa(s.BatchSize),
		"seed":              strconv.FormatUint(s.Seed, 10),
		"epochs":            strconv.Itoa(s.Epochs),
		"best_epoch":        strconv.Itoa(s.BestEpoch),
		"train_lists":       strconv.Itoa(s.TrainLists),
		"dev_lists":         strconv.Itoa(s.DevLists),
		"data_fingerprint":  s.DataFingerprint,
		"dev_ndcg10_before": f(s.Before.NDCG10),
		"dev_ndcg10_after":  f(s.After.NDCG10),
		"applies_to":        "queries only: q' = W q (torch.nn.Linear weight, out x in), then normalise; passages unchanged",
	}
}
