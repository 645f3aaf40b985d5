package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/sourcegraph/conc/pool"

	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
)

// genPlan renders the request of every query slot. It is a pure function of
// the settings and the passage, so generate and filter agree on fingerprints.
type genPlan struct {
	cfg   *pipeline.Config
	tm    *prompts.Templates
	pool  prompts.Pool
	kind  string // "offline" or "openai"
	extra string // canonical JSON of extra body keys
}

func newGenPlan(cfg *pipeline.Config) (*genPlan, error) {
	tm, err := prompts.LoadTemplates()
	if err != nil {
		return nil, err
	}
	pool := prompts.DefaultPool()
	if cfg.Examples != "" {
		f, err := os.Open(cfg.Examples)
		if err != nil {
			return nil, fmt.Errorf("open examples: %w", err)
		}
		defer f.Close()
		user, err := prompts.ReadPool(f, cfg.Examples)
		if err != nil {
			return nil, err
		}
		pool = pool.Merge(user)
	}
	kind := "openai"
	if cfg.Offline {
		kind = "offline"
	}
	extra, _ := json.Marshal(cfg.LLMExtra) // map keys marshal sorted
	return &genPlan{cfg: cfg, tm: tm, pool: pool, kind: kind, extra: string(extra)}, nil
}

// request builds the chat request of one slot and its fingerprint: model,
// generator kind, template version, rendered messages (passage and examples),
// sampling parameters, seed and extra body keys. URLs and keys are not part
// of it: any endpoint serving the same model shares the cache.
func (g *genPlan) request(docID string, doc Passage, qtype string, sample int) (GenRequest, string, error) {
	c := g.cfg
	passage := prompts.CutPassage(doc.Full(), c.MaxPassageChars)
	var ex []prompts.Example
	if prompts.FewShot(qtype) {
		ex = g.pool.Draw(qtype, c.Seed, docID, passage, c.FewShot, c.MaxPassageChars)
	}
	msgs, err := g.tm.Render(qtype, passage, ex)
	if err != nil {
		return GenRequest{}, "", err
	}
	seed := int(pipeline.Hash64(strconv.FormatUint(c.Seed, 10), docID, qtype, strconv.Itoa(sample)) & 0x7fffffff)
	req := GenRequest{Messages: msgs, Type: qtype, Passage: passage, Seed: seed,
		Temperature: c.Temperature, TopP: c.TopP, MaxTokens: c.MaxTokens}
	mj, _ := json.Marshal(msgs)
	model := c.LLMModel
	if c.Offline {
		model = "offline"
	}
	fp := pipeline.Fingerprint("chat/v1", g.kind, model, g.tm.Version(qtype), string(mj),
		strconv.FormatFloat(c.Temperature, 'g', -1, 64), strconv.FormatFloat(c.TopP, 'g', -1, 64),
		strconv.Itoa(c.MaxTokens), strconv.Itoa(seed), g.extra)
	return req, fp, nil
}

// Deps are the remote peers the stages call. Probe functions check that a
// server answers before its first request; they are only called when there
// is work that is not already stored.
type Deps struct {
	Generator    Generator
	Scorer       Scorer
	ProbeLLM     func(ctx context.Context) error
	ProbeTeacher func(ctx context.Context) error
}

// GenerateStage asks the LLM for every (passage, type, sample) slot whose
// answer is not stored yet, at most cfg.Concurrency requests in flight (the
// pool blocks at the limit: backpressure, not a goroutine per item). Each
// answer is stored under its request fingerprint as soon as it arrives. A
// failing item is recorded with its reason and the run goes on; recorded
// failures are not retried unless cfg.RetryFailed.
func GenerateStage(deps *Deps) pipeline.Stage {
	return pipeline.Stage{Name: "generate", Doc: "ask the LLM for queries", Run: func(ctx context.Context, env *pipeline.Env) error {
		return runGenerate(ctx, env, deps)
	}}
}

func runGenerate(ctx context.Context, env *pipeline.Env, deps *Deps) error {
	cfg, st := env.Config, env.Store
	c := env.Counters("generate")
	plan, err := newGenPlan(cfg)
	if err != nil {
		return err
	}
	docs, err := st.Count(pipeline.PrefixDoc)
	if err != nil {
		return err
	}
	bar := env.Progress.Start("generate", int64(docs*len(cfg.QueryTypes)*cfg.QueriesPerType))
	defer bar.Finish()
	var probeOnce sync.Once
	var probeErr error
	p := pool.New().WithContext(ctx).WithMaxGoroutines(cfg.Concurrency).WithCancelOnError().WithFirstError()
	scanErr := forEachSlot(ctx, st, cfg, plan, func(docID, qt string, s int, req GenRequest, fp string) error {
		if ok, err := st.Has(pipeline.PrefixLLM + fp); err != nil {
			return err
		} else if ok {
			c.Add("cached", 1)
			bar.Add(1)
			return nil
		}
		if !cfg.RetryFailed {
			if ok, err := st.Has(failKey(fp)); err != nil {
				return err
			} else if ok {
				c.Add("failed", 1)
				bar.Add(1)
				return nil
			}
		}
		if probeOnce.Do(func() {
			if deps.ProbeLLM != nil {
				probeErr = deps.ProbeLLM(ctx)
			}
		}); probeErr != nil {
			return probeErr
		}
		item := QID(docID, qt, s)
		p.Go(func(ctx context.Context) error {
			defer bar.Add(1)
			ans, err := deps.Generator.Generate(ctx, req)
			var ie *ItemError
			if errors.As(err, &ie) {
				c.Add("failed", 1)
				return st.PutJSON(failKey(fp), Failure{Stage: "generate", Item: item, Reason: ie.Error()})
			}
			if err != nil {
				return err
			}
			if err := st.PutJSON(pipeline.PrefixLLM+fp, ans); err != nil {
				return err
			}
			if cfg.RetryFailed {
				if err := st.Delete(failKey(fp)); err != nil {
					return err
				}
			}
			c.Add("requests", 1)
			c.Add("prompt_tokens", int64(ans.PromptTokens))
			c.Add("completion_tokens", int64(ans.CompletionTokens))
			return nil
		})
		return nil
	})
	werr := p.Wait()
	if scanErr != nil {
		return scanErr
	}
	return werr
}

// forEachSlot calls fn for every (passage, type, sample) slot, in passage-id
// order, with the slot's rendered request and fingerprint. Generate and filter
// both enumerate slots through it, so they always agree on fingerprints.
func forEachSlot(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, plan *genPlan,
	fn func(docID, qtype string, sample int, req GenRequest, fp string) error) error {
	return st.Scan(pipeline.PrefixDoc, func(docID string, v []byte) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var doc Passage
		if err := json.Unmarshal(v, &doc); err != nil {
			return fmt.Errorf("passage %q: %w", docID, err)
		}
		for _, qt := range cfg.QueryTypes {
			for s := 0; s < cfg.QueriesPerType; s++ {
				req, fp, err := plan.request(docID, doc, qt, s)
				if err != nil {
					return err
				}
				if err := fn(docID, qt, s, req, fp); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
