package dataset

import (
	"errors"

	"github.com/synthq/synthq/pipeline"
)

// ScanJSON calls fn with every record under prefix decoded as a T, in key
// order (key without the prefix). A record that does not decode stops the
// scan with an error naming its key; so does an error of fn. A record that
// decodes but fails its Check (Checked: lists of different lengths, a
// score that is not finite) is skipped, never handed to fn to index out of
// range: derived tables are computed again by the next run, and export
// records each one it meets as a failure naming its key. It costs one read
// of the table and one decode per record.
func ScanJSON[T any](st *pipeline.Store, prefix string, fn func(key string, v T) error) error {
	return st.Scan(prefix, func(k string, b []byte) error {
		v, err := DecodeChecked[T](prefix+k, b)
		var bad *BadRecordError
		if errors.As(err, &bad) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(k, v)
	})
}
