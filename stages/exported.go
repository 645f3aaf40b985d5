package stages

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/synthq/synthq/pipeline"
)

// A store may be exported to several folders (the run's OUT, then
// `synthq export --out other --layout paper`): the stage statistics under
// stat/export are those of the last export anywhere. Each export of one
// store also records its own under meta/exports/<OUT>, OUT the cleaned
// absolute path of the folder, so that `synthq stats` can say what a given
// folder holds.

// prefixExports is where the exports of a store are recorded, per folder.
const prefixExports = pipeline.PrefixMeta + "exports/"

// ExportedTo is the record of the last export of a store to one folder.
type ExportedTo struct {
	Out     string              `json:"out"` // cleaned absolute path
	Layout  string              `json:"layout"`
	Formats []string            `json:"formats"`
	Stats   pipeline.StageStats `json:"stats"` // the export stage's counts, time and end
}

// outKey is the key of out's record.
func outKey(out string) (string, error) {
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", fmt.Errorf("output folder %s: %w", out, err)
	}
	return filepath.Clean(abs), nil
}

// recordExport stores the export of env's store to its OUT.
func recordExport(env *pipeline.Env, took time.Duration) error {
	key, err := outKey(env.Config.Out)
	if err != nil {
		return err
	}
	rec := ExportedTo{Out: key, Layout: env.Config.Layout, Formats: env.Config.Formats,
		Stats: pipeline.StageStats{Counts: env.Counters("export").Snapshot(), Seconds: took.Seconds(), Finished: time.Now().UTC()}}
	return env.Store.PutJSON(prefixExports+key, rec)
}

// Exports lists the folders st was exported to, each with its last export,
// in path order.
func Exports(st *pipeline.Store) ([]ExportedTo, error) {
	var out []ExportedTo
	err := st.Scan(prefixExports, func(_ string, v []byte) error {
		var r ExportedTo
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("store %s: export record: %w", st.Path(), err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// RunOut is where the run stored in st wrote its output, as an absolute
// path: cfg.Out as the run gave it, found from the store's path given now
// (storeArg) when both were relative (OUT/store by default), so that the
// answer does not depend on the folder `stats` runs in.
func RunOut(cfg *pipeline.Config, storeArg string) string {
	if cfg.Out == "" {
		return ""
	}
	if !filepath.IsAbs(cfg.Out) && cfg.Store != "" && !filepath.IsAbs(cfg.Store) {
		if rel, err := filepath.Rel(cfg.Store, cfg.Out); err == nil {
			if abs, err := filepath.Abs(filepath.Join(storeArg, rel)); err == nil {
				return filepath.Clean(abs)
			}
		}
	}
	abs, err := filepath.Abs(cfg.Out)
	if err != nil {
		return cfg.Out
	}
	return filepath.Clean(abs)
}

// ExportTo returns the record of the last export of st to out (ok false
// when st holds none for it).
func ExportTo(st *pipeline.Store, out string) (rec ExportedTo, ok bool, err error) {
	key, err := outKey(out)
	if err != nil {
		return rec, false, err
	}
	ok, err = st.GetJSON(prefixExports+key, &rec)
	return rec, ok, err
}
