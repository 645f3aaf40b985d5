package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/retriever"
	"github.com/synthq/synthq/stages"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "evaluate first-pass retrieval on a BEIR dataset: nDCG@10, R@100, R@1000, MRR@10",
		Flags: append(corpusFlags(),
			&cli.StringFlag{Name: "queries", Usage: "BEIR queries.jsonl", Required: true},
			&cli.StringFlag{Name: "qrels", Usage: "BEIR qrels TSV (header optional, LF or CRLF)", Required: true},
			&cli.StringFlag{Name: "retriever", Value: "bm25", Usage: "retriever to evaluate: bm25"},
			&cli.Float64Flag{Name: "bm25-k1", Value: 0.9},
			&cli.Float64Flag{Name: "bm25-b", Value: 0.4},
			&cli.BoolFlag{Name: "json", Usage: "print the metrics as JSON"},
			&cli.StringFlag{Name: "run", Usage: "write the top 1000 per query as a TREC run file"},
		),
		Action: func(c *cli.Context) error {
			if c.String("retriever") != "bm25" {
				return fmt.Errorf("--retriever %q: only bm25 is built in so far", c.String("retriever"))
			}
			qrels, err := retriever.ReadQrels(c.String("qrels"))
			if err != nil {
				return err
			}
			queries, err := retriever.ReadQueries(c.String("queries"))
			if err != nil {
				return err
			}
			b := retriever.NewBM25Builder(nil, &retriever.BM25Params{K1: float32(c.Float64("bm25-k1")), B: float32(c.Float64("bm25-b"))})
			skipped := map[string]int64{}
			if _, err := stages.ReadCorpus(c.Context, c.String("corpus"), stages.CorpusOptions{
				IDField: c.String("id-field"), TextField: c.String("text-field"), TitleField: c.String("title-field"),
				SkipInvalid: c.Bool("skip-invalid")}, skipped, func(r stages.Record) error {
				b.Add(r.ID, r.Title+" "+r.Text)
				return nil
			}); err != nil {
				return err
			}
			ix := b.Build()
			var runF *os.File
			if p := c.String("run"); p != "" {
				if runF, err = os.Create(p); err != nil {
					return fmt.Errorf("create run file: %w", err)
				}
				defer runF.Close()
			}
			runs := map[string][]string{}
			for _, q := range queries {
				if _, judged := qrels[q.ID]; !judged {
					continue
				}
				hits, err := ix.Search(c.Context, q.Text, 1000)
				if err != nil {
					return err
				}
				for _, h := range hits {
					runs[q.ID] = append(runs[q.ID], h.DocID)
					if runF != nil {
						fmt.Fprintf(runF, "%s Q0 %s %d %.6f synthq-bm25\n", q.ID, h.DocID, h.Rank, h.Score)
					}
				}
			}
			m := retriever.Evaluate(qrels, runs)
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(m)
			}
			fmt.Fprintf(c.App.Writer, "queries %d  nDCG@10 %.4f  R@100 %.4f  R@1000 %.4f  MRR@10 %.4f\n", m.Queries, m.NDCG10, m.Recall100, m.Recall1k, m.MRR10)
			return nil
		},
	}
}
