package stages

import (
	"encoding/json"
	"testing"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/pipeline"
)

// A secret-looking --llm-extra value (redacted in the stored config and
// manifest) does not shape the answer: two values share the cache, no hash
// of it is stored, and the fingerprints rebuilt from the stored config
// (inspect, stats' failure scope) are the run's. Any other extra key still
// changes them, and extras with no secret fingerprint as before.
func TestLLMExtraSecretsInFingerprints(t *testing.T) {
	doc := dataset.Passage{Title: "Sync", Text: "The desktop client syncs every five minutes."}
	fps := func(extra map[string]any) (slot, config, scope string) {
		cfg := pipeline.DefaultConfig()
		cfg.LLMExtra = extra
		cfg.EnsureDefaults()
		_, slot, err := SlotRequest(cfg, "kb001", doc, "questions", 0)
		if err != nil {
			t.Fatal(err)
		}
		return slot, cfg.Fingerprint(), cfg.FailureScope()
	}
	stored := func(extra map[string]any) map[string]any {
		cfg := pipeline.DefaultConfig()
		cfg.LLMExtra = extra
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var back pipeline.Config
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		return back.LLMExtra
	}
	a := map[string]any{"top_k": 20.0, "api_key": "sk-AAAA1111", "auth": map[string]any{"token": "t0k3n"}}
	b := map[string]any{"top_k": 20.0, "api_key": "sk-BBBB2222", "auth": map[string]any{"token": "other"}}
	sa, ca, pa := fps(a)
	for name, m := range map[string]map[string]any{"another secret": b, "the stored config": stored(a)} {
		s, c, p := fps(m)
		if s != sa || c != ca || p != pa {
			t.Errorf("%s: fingerprints differ (slot %v, config %v, scope %v the same)", name, s == sa, c == ca, p == pa)
		}
	}
	if s, c, _ := fps(map[string]any{"top_k": 21.0, "api_key": "sk-AAAA1111", "auth": map[string]any{"token": "t0k3n"}}); s == sa || c == ca {
		t.Error("top_k 21 shares the fingerprints of top_k 20")
	}
	// No secret: the same bytes as the raw map, so stores made before keep
	// their cache.
	plain := map[string]any{"top_k": 20.0, "stop": []any{"\n\n", "Passage:"}, "repetition_penalty": 1.1}
	x, _ := json.Marshal(plain)
	y, _ := json.Marshal(redact.Values(plain))
	if string(x) != string(y) {
		t.Errorf("extras with no secret fingerprint differently: %s vs %s", x, y)
	}
}
