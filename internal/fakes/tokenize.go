package fakes

import (
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"
)

// tokenize is the POST /tokenize route of a real server, in its form
// ("llama.cpp", "vllm" or "tei"), counting texts with WindowTokens (what
// the fakes count against their windows) and making up token ids. What each
// answers, byte for byte in shape:
//
//   - llama.cpp (server.cpp handle_tokenize): {"tokens":[ids]}, and
//     {"tokens":[]} with 200 for a body without "content";
//   - vLLM: {"count":n,"max_model_len":m,"tokens":[ids],"token_strs":null},
//     and its 400 {"object":"error",…,"type":"BadRequestError"} for a body
//     without "prompt";
//   - TEI: [[{"id","text","special","start","stop"}…]] per input, and axum's
//     422 plain-text "Failed to deserialize the JSON body into the target
//     type: missing field `inputs` …" for a body without "inputs".
//
// n counts the requests.
func tokenize(form string, n *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Content *string `json:"content"`
			Prompt  *string `json:"prompt"`
			Inputs  *string `json:"inputs"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "bad json", 400)
			return
		}
		ids := func(text string) []int {
			out := make([]int, WindowTokens(text))
			for i := range out {
				out[i] = 1000 + i
			}
			return out
		}
		switch form {
		case "llama.cpp":
			toks := []int{}
			if req.Content != nil {
				toks = ids(*req.Content)
			}
			writeJSON(w, 200, map[string]any{"tokens": toks})
		case "vllm":
			if req.Prompt == nil {
				writeJSON(w, 400, map[string]any{"object": "error", "message": "[{'type': 'missing', 'loc': ('body', 'TokenizeCompletionRequest', 'prompt'), 'msg': 'Field required'}]",
					"type": "BadRequestError", "param": nil, "code": 400})
				return
			}
			toks := ids(*req.Prompt)
			writeJSON(w, 200, map[string]any{"count": len(toks), "max_model_len": 512, "tokens": toks, "token_strs": nil})
		case "tei":
			if req.Inputs == nil {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(422)
				io.WriteString(w, "Failed to deserialize the JSON body into the target type: missing field `inputs` at line 1 column 40")
				return
			}
			var toks []map[string]any
			for i, id := range ids(*req.Inputs) {
				toks = append(toks, map[string]any{"id": id, "text": "t", "special": false, "start": i, "stop": i + 1})
			}
			writeJSON(w, 200, [][]map[string]any{toks})
		}
	}
}
