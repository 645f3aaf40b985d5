package pipeline

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Item 8 of issue 23: the stored config, the manifest and the report show
// durations as Go durations and concurrency as its flag takes it; an
// offline run lists no LLM or teacher model; stores written before (numbers)
// still read; fingerprints are those of the earlier encoding.
func TestConfigJSON(t *testing.T) {
	c := DefaultConfig()
	c.Concurrency, c.TeacherConcurrency, c.Grace = 0, 8, 5*time.Second
	c.LLMURLs, c.TeacherURLs = []string{"http://h:8000/v1"}, []string{"http://t:8080"}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"concurrency":"auto"`, `"teacher_concurrency":8`, `"grace":"5s"`, `"max_outage":"30m0s"`,
		`"request_timeout":"1m0s"`, `"llm_model":"meta-llama/Llama-3.1-8B-Instruct"`, `"llm_urls":["http://h:8000/v1"]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("encoded config lacks %s:\n%s", want, b)
		}
	}
	for _, no := range []string{`"llm_concurrency"`, `"embed_concurrency"`} {
		if strings.Contains(string(b), no) {
			t.Errorf("encoded config has %s (0: as --concurrency)", no)
		}
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, *c)
	}

	// A store written before: nanoseconds and a bare 0 for auto.
	var old Config
	if err := json.Unmarshal([]byte(`{"grace":30000000000,"max_outage":1800000000000,"request_timeout":60000000000,"concurrency":0,"llm_concurrency":4}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Grace != 30*time.Second || old.MaxOutage != 30*time.Minute || old.RequestTimeout != time.Minute || old.Concurrency != 0 || old.LLMConcurrency != 4 {
		t.Errorf("earlier encoding read as %+v", old)
	}

	// Offline: no model named.
	off := DefaultConfig()
	off.Offline, off.LLMModel, off.TeacherModel, off.TeacherAPI = true, "", "", "lexical"
	b, _ = json.Marshal(off)
	for _, no := range []string{"llm_model", "teacher_model", "llm_urls", "teacher_urls", "Llama", "bge"} {
		if strings.Contains(string(b), no) {
			t.Errorf("offline config names %s:\n%s", no, b)
		}
	}

	// Fingerprints as computed by the encoding before this change (the
	// values printed by synthq 40e1fd8), so no store's cache is invalidated.
	// (DefaultConfig then had RoundtripK 0.)
	def := DefaultConfig()
	def.RoundtripK = 0
	fc := *def
	fc.Concurrency, fc.Grace, fc.LLMURLs = 8, 5*time.Second, []string{"http://u:p@h/v1"}
	if got := def.Fingerprint(); got != "14370d00776ce69341c6da133a382ec1" {
		t.Errorf("Fingerprint of the defaults changed: %s", got)
	}
	if got := fc.FailureScope(); got != "d979d5952eaa8ef5d02ec1c098e56291" {
		t.Errorf("FailureScope changed: %s", got)
	}
}
