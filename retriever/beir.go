package retriever

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Query is one BEIR query.
type Query struct {
	ID   string `json:"_id"`
	Text string `json:"text"`
}

// ReadQueries reads a BEIR queries.jsonl ({"_id","text"}). Errors name the
// file, line and field.
func ReadQueries(path string) ([]Query, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open queries: %w", err)
	}
	defer f.Close()
	var out []Query
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		if line == "" {
			continue
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			return nil, fmt.Errorf("%s:%d: invalid JSON: %w", path, n, err)
		}
		var q Query
		if err := json.Unmarshal(raw["_id"], &q.ID); err != nil || q.ID == "" {
			return nil, fmt.Errorf("%s:%d: field \"_id\": missing or not a string", path, n)
		}
		if err := json.Unmarshal(raw["text"], &q.Text); err != nil {
			return nil, fmt.Errorf("%s:%d: field \"text\": missing or not a string", path, n)
		}
		out = append(out, q)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// ReadQrels reads BEIR qrels (query-id, corpus-id, score; tab separated),
// with or without a header line, LF or CRLF. A line with another column count
// or a non-integer score is an error naming file and line.
func ReadQrels(path string) (Qrels, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open qrels: %w", err)
	}
	defer f.Close()
	q := Qrels{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(strings.TrimPrefix(sc.Text(), "\ufeff"), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) == 4 { // TREC layout: qid 0 docid grade
			cols = []string{cols[0], cols[2], cols[3]}
		}
		if len(cols) != 3 {
			return nil, fmt.Errorf("%s:%d: want 3 tab-separated columns (query-id, corpus-id, score), got %d", path, n, len(cols))
		}
		g, err := strconv.Atoi(strings.TrimSpace(cols[2]))
		if err != nil {
			if n == 1 {
				continue // header
			}
			return nil, fmt.Errorf("%s:%d: score %q is not an integer", path, n, cols[2])
		}
		if q[cols[0]] == nil {
			q[cols[0]] = map[string]int{}
		}
		q[cols[0]][cols[1]] = g
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return q, nil
}
