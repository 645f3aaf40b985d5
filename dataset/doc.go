// Package dataset is what the store holds and what every reader of it
// shares: the records of each table (Passage, Answer, Query, Mined,
// Labelled, Failure), one key builder per table (keys.go) and ScanJSON to
// read a table, the drop reasons, the fingerprints that decide when cached
// work is reused (teacher, first-pass runs, windows), and the targets the
// export applies (percentiles, filters, split). The stages write the
// records; the report and inspect read them with the same rules. It
// depends on pipeline (the store, the config) and nothing above it.
package dataset
