// Package stages holds the stages of the flow, each a pipeline.Stage that
// reads its inputs from the store and writes its results there:
//
//   - corpus.go: CorpusStage reads and validates the corpus file (doc/).
//   - selection.go: which passages are asked about (sample, hold-out,
//     duplicates), computed once per corpus and settings.
//   - generate.go: GenerateStage asks the LLM for every query slot (llm/);
//     dryrun.go: what it would send and cost, with no request.
//   - filter.go: FilterStage parses the answers into the query table (q/).
//   - mine.go, vectors.go: MineStage retrieves first-pass candidates (m/,
//     hits/, vec/).
//   - label.go: LabelStage scores the candidates with the teacher (l/,
//     score/).
//   - export.go and export_*.go, layout*.go: ExportStage applies the
//     targets and writes the dataset in its layout and formats, the card and
//     the manifest; merge.go: the same from the stores of N shards.
//
// deps.go declares what the stages need of the servers (Deps and the
// Generator, Scorer and Embedder contracts). The records, keys, drop reasons,
// fingerprints and targets that the stages, the report and inspect share
// are in package dataset.
package stages
