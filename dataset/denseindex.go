package dataset

import (
	"encoding/json"

	"github.com/synthq/synthq/pipeline"
)

// MetaDenseIndex is the prefix of the dense runs' index records
// (meta/dense_index/<run>: DenseIndexInfo).
const MetaDenseIndex = pipeline.PrefixMeta + "dense_index/"

// DenseIndexKey is where dense run run's index record is stored.
func DenseIndexKey(run string) string { return MetaDenseIndex + run }

// DenseIndexInfo is what a dense run searched and how well, stored under
// DenseIndexKey(Run) and shown in the manifest, `synthq stats` and the
// report. For an approximate index, Recall is recall@K against exact
// search on a seeded sample of the run's queries (Found of Wanted exact
// hits, over Queries sampled queries).
type DenseIndexInfo struct {
	Run      string  `json:"run"`
	Model    string  `json:"model"`
	Mode     string  `json:"mode"` // exact | approx
	Lists    int     `json:"lists"`
	Probe    int     `json:"probe"`
	K        int     `json:"k"`
	Passages int     `json:"passages"`
	Dim      int     `json:"dim"`
	File     string  `json:"file"`
	Queries  int     `json:"recall_queries,omitempty"`
	Found    int64   `json:"recall_found,omitempty"`
	Wanted   int64   `json:"recall_wanted,omitempty"`
	Recall   float64 `json:"recall_at_k,omitempty"`
	RunFP    string  `json:"run_fingerprint"`
}

// DenseIndexes reads the dense runs' index records of st, by run name.
func DenseIndexes(st *pipeline.Store) ([]DenseIndexInfo, error) {
	var out []DenseIndexInfo
	err := st.Scan(MetaDenseIndex, func(_ string, v []byte) error {
		var d DenseIndexInfo
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	return out, err
}
