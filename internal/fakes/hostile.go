package fakes

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
)

// Hostile answers are further Fault values that every fake (LLM, Reranker,
// Embedder) understands: what a broken, misconfigured or hostile server
// sends with HTTP 200. Each is built from the answer the fake would have
// given, so it is what that server's route really looks like gone wrong:
//
//   - "huge": the real answer after HugeBytes of JSON whitespace (still
//     valid JSON that decodes to the real answer: only its size is wrong),
//     streamed in 64 KiB writes that stop when the client hangs up; the
//     padding written is counted in HugeSent. Behind a Latency (which
//     buffers answers) the padding is cut to 16 MiB.
//   - "malformed": valid JSON of the wrong shape, as a proxy or another
//     kind of server answers: {"choices":"oops"} for chat, {"results":
//     "oops"} (Cohere-style), [{"index":"0","score":"high"}] (TEI),
//     {"data":"oops"} (vLLM /score, embeddings).
//   - "nan": every score and the first entry of every vector written NaN,
//     as Python's json.dumps writes a NaN (not JSON).
//   - "absurd": numbers no model gives: scores of 1e300 (+Inf as float32),
//     a vector entry of 1e39 (past float32), usage of -5 and 1e15 tokens.
//   - "denormal": every vector [1e-44, 0, …]: float32 denormals, which a
//     normalisation in float32 turns into +Inf and NaN.
//   - "zero": every vector all zeros.
const HugeBytes = 1 << 30

// nanMark is a number the "nan" answer writes in place of NaN, replaced in
// the encoded body (encoding/json refuses NaN).
const nanMark = 1.25e-300

// hostile writes the hostile answer fault names, built from ok (the real
// answer), and reports whether it did. c counts the padding of "huge".
func hostile(w http.ResponseWriter, fault string, ok any, c *Capacity) bool {
	switch fault {
	case "huge":
		b, _ := json.Marshal(ok)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		n := int64(HugeBytes)
		if _, buffered := w.(*httptest.ResponseRecorder); buffered {
			n = 16 << 20
		}
		pad := bytes.Repeat([]byte(" "), 64<<10)
		for sent := int64(0); sent < n; {
			k, err := w.Write(pad[:min(int64(len(pad)), n-sent)])
			sent += int64(k)
			c.HugeSent.Add(int64(k))
			if err != nil {
				return true
			}
		}
		w.Write(b)
		return true
	case "malformed":
		var v any = map[string]any{"data": "oops"}
		switch o := ok.(type) {
		case []map[string]any:
			v = []map[string]any{{"index": "0", "score": "high"}}
		case map[string]any:
			for _, k := range []string{"choices", "results", "data"} {
				if _, has := o[k]; has {
					v = map[string]any{k: "oops"}
					break
				}
			}
		}
		writeJSON(w, 200, v)
		return true
	case "nan", "absurd", "denormal", "zero":
		mutateNumbers(ok, fault)
		b, err := json.Marshal(ok)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return true
		}
		if fault == "nan" {
			b = bytes.ReplaceAll(b, []byte("1.25e-300"), []byte("NaN"))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.Write(b)
		return true
	}
	return false
}

// mutateNumbers rewrites the scores, vectors and usage counts in an answer
// built of maps and slices, as the hostile fault asks.
func mutateNumbers(v any, fault string) {
	switch o := v.(type) {
	case []map[string]any:
		for _, m := range o {
			mutateNumbers(m, fault)
		}
	case []any:
		for _, x := range o {
			mutateNumbers(x, fault)
		}
	case map[string]any:
		for k, x := range o {
			switch {
			case k == "score" || k == "relevance_score":
				switch fault {
				case "nan":
					o[k] = nanMark
				case "absurd":
					o[k] = 1e300
				}
			case k == "embedding":
				vec, isVec := x.([]float32)
				if !isVec || len(vec) == 0 {
					break
				}
				out := make([]float64, len(vec))
				switch fault {
				case "nan":
					out[0] = nanMark
				case "absurd":
					out[0] = 1e39
				case "denormal":
					out[0] = 1e-44
				case "zero":
				}
				o[k] = out
			case strings.HasSuffix(k, "_tokens") && fault == "absurd":
				if k == "prompt_tokens" {
					o[k] = -5
				} else {
					o[k] = 1e15
				}
			default:
				mutateNumbers(x, fault)
			}
		}
	}
}
