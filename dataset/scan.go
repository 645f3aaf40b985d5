package dataset

import (
	"encoding/json"
	"fmt"

	"github.com/synthq/synthq/pipeline"
)

// ScanJSON calls fn with every record under prefix decoded as a T, in key
// order (key without the prefix). A record that does not decode stops the
// scan with an error naming its key; so does an error of fn. It costs one
// read of the table and one decode per record.
func ScanJSON[T any](st *pipeline.Store, prefix string, fn func(key string, v T) error) error {
	return st.Scan(prefix, func(k string, b []byte) error {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("store decode %q: %w", prefix+k, err)
		}
		return fn(k, v)
	})
}
