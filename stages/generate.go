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

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/llm"
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
	// The extra body keys enter every request's fingerprint as the stored
	// config shows them (secret-looking values redacted, map keys sorted):
	// a credential does not shape the answer (like --llm-api-key and the
	// URLs, it is left out, so a rotated key keeps the cache), no hash of it
	// reaches the store, and a fingerprint rebuilt from the stored config
	// (inspect, report) finds the run's answers.
	extra, _ := json.Marshal(redact.Values(cfg.LLMExtra))
	return &genPlan{cfg: cfg, tm: tm, pool: pool, kind: kind, extra: string(extra)}, nil
}

// request builds the chat request of one slot and its fingerprint: model,
// generator kind, template version, rendered messages (passage and examples),
// sampling parameters, seed and extra body keys. URLs and keys are not part
// of it: any endpoint serving the same model shares the cache.
func (g *genPlan) request(docID string, doc dataset.Passage, qtype string, sample int) (llm.Request, string, error) {
	c := g.cfg
	passage := prompts.CutPassage(doc.Full(), c.MaxPassageChars)
	var ex []prompts.Example
	if prompts.FewShot(qtype) {
		ex = g.pool.Draw(qtype, c.Seed, docID, passage, c.FewShot, c.MaxPassageChars)
	}
	msgs, err := g.tm.Render(qtype, passage, ex)
	if err != nil {
		return llm.Request{}, "", err
	}
	seed := int(pipeline.Hash64(strconv.FormatUint(c.Seed, 10), docID, qtype, strconv.Itoa(sample)) & 0x7fffffff)
	req := llm.Request{Messages: msgs, Type: qtype, Passage: passage, Seed: seed,
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

// SlotRequest is the chat request the generate stage sends for one query
// slot, and its fingerprint (its answer is stored under AnswerKey(fp)).
func SlotRequest(cfg *pipeline.Config, docID string, doc dataset.Passage, qtype string, sample int) (llm.Request, string, error) {
	plan, err := newGenPlan(cfg)
	if err != nil {
		return llm.Request{}, "", err
	}
	return plan.request(docID, doc, qtype, sample)
}

// GenerateStage asks the LLM for every (passage, type, sample) slot whose
// answer is not stored yet, at most cfg.Concurrency requests in flight (the
// pool blocks at the limit: backpressure, not a goroutine per item). Each
// answer is stored under its request fingerprint as soon as it arrives. A
// failing item is recorded with its reason and the run goes on; recorded
// failures are not retried unless cfg.RetryFailed.
func GenerateStage(deps *Deps) pipeline.Stage {
	return pipeline.Stage{Name: "generate", Doc: "ask the LLM for queries", Announces: true,
		Reads: []string{pipeline.PrefixDoc}, Writes: []string{pipeline.PrefixLLM}, PaidCounter: "requests", Run: func(ctx context.Context, env *pipeline.Env) error {
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
	asked, err := passagesAsked(ctx, st, cfg, env.Progress)
	if err != nil {
		return err
	}
	bar := env.Progress.Start("generate", int64(asked*len(cfg.QueryTypes)*cfg.QueriesPerType))
	defer bar.Finish()
	g := &generator{st: st, c: c, gen: deps.Generator, retryFailed: cfg.RetryFailed, useN: !cfg.NoN,
		scope: cfg.FailureScope(), model: cfg.Generator(), ref: env.Refusals("llm"), env: env}
	var probeOnce sync.Once
	var probeErr error
	p := pool.New().WithContext(ctx).WithMaxGoroutines(deps.workers(cfg, "llm")).WithCancelOnError().WithFirstError()
	_, scanErr := forEachGroup(ctx, st, cfg, plan, func(docID, qt string, slots []slot) error {
		if env.Stopping() {
			return pipeline.ErrInterrupted
		}
		var todo []slot
		for _, sl := range slots {
			if ok, err := st.Has(dataset.AnswerKey(sl.fp)); err != nil {
				return err
			} else if ok {
				c.Add("cached", 1)
				bar.Add(1)
				continue
			}
			if !cfg.RetryFailed {
				if ok, err := dataset.EarlierFailure(st, dataset.FailKey(sl.fp), g.scope); err != nil {
					return err
				} else if ok {
					c.Add("failed", 1)
					bar.Add(1)
					continue
				}
			}
			todo = append(todo, sl)
		}
		if len(todo) == 0 {
			return nil
		}
		if probeOnce.Do(func() {
			if deps.ProbeLLM != nil {
				probeErr = deps.ProbeLLM(ctx)
			}
		}); probeErr != nil {
			return probeErr
		}
		p.Go(func(ctx context.Context) error {
			err := g.fill(ctx, docID, qt, todo)
			if err == nil {
				bar.Add(int64(len(todo))) // not at Ctrl-C: what was in flight is not done
			}
			if errors.Is(err, httpx.ErrStopped) {
				return nil // not sent: the run is stopping; the others in flight go on
			}
			return err
		})
		return nil
	})
	werr := p.Wait()
	if g.n.refused() {
		c.Add("n_unsupported", 1)
	}
	if err := firstErr(scanErr, werr); err != nil {
		return err
	}
	return g.ref.Close()
}

// firstErr returns the first error that matters: a stop for a
// misconfiguration or a fatal error over an interruption, since an
// interruption follows from the others' cancellation.
func firstErr(errs ...error) error {
	var first error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, pipeline.ErrInterrupted) || errors.Is(err, httpx.ErrStopped) || errors.Is(err, context.Canceled):
			if first == nil {
				first = pipeline.ErrInterrupted
			}
		default:
			return err
		}
	}
	return first
}

// generator fills the missing slots of one (passage, type).
type generator struct {
	st          *pipeline.Store
	c           *pipeline.Counters
	gen         Generator
	retryFailed bool
	useN        bool
	ref         *pipeline.Refusals
	env         *pipeline.Env // answers are announced to the stages working ahead
	scope       string        // FailureScope of the run's settings, stamped on failures
	model       string        // the model asked for (answers naming another are counted)
	// n knows whether the server honours n: once it is seen not to (it
	// answered fewer choices, or refused n > 1 and then answered one), each
	// slot is its own request.
	n nGate
}

// fill asks for the slots' answers: several missing slots go as one request
// with n = len(slots) (seed of the first slot; choice i fills slot i) while
// the server honours n, else one request per slot with its own seed. Answers
// of one request are written in one batch, so a kill never leaves a group
// half stored. A slot whose request fails for good is recorded as failed.
func (g *generator) fill(ctx context.Context, docID, qt string, todo []slot) error {
	if len(todo) > 1 && g.useN {
		useN, probe, err := g.n.enter(ctx)
		if err != nil {
			return err
		}
		if useN {
			rest, state, err := g.fillN(ctx, docID, qt, todo)
			if probe {
				g.n.settle(state)
			}
			if err != nil {
				return err
			}
			todo = rest
		}
	}
	for _, sl := range todo {
		if _, err := g.one(ctx, docID, qt, sl); err != nil {
			return err
		}
	}
	return nil
}

// fillN asks for todo's answers in one request with n = len(todo) and
// returns the slots still to fill and what the answer tells of n support.
func (g *generator) fillN(ctx context.Context, docID, qt string, todo []slot) ([]slot, nState, error) {
	req := todo[0].req
	req.N = len(todo)
	ans, err := g.gen.Generate(ctx, req)
	var ie *llm.ItemError
	switch {
	case errors.As(err, &ie):
		// Maybe the server refuses n > 1 (llama.cpp before it honoured n:
		// "Only one completion choice is allowed"); one request for the
		// first slot tells: it answers, so n was refused, or it fails too,
		// so the refusal was about the item.
		g.c.Add("n_requests_failed", 1)
		ok, err := g.one(ctx, docID, qt, todo[0])
		if err != nil {
			return nil, nUnknown, err
		}
		if !ok {
			return todo[1:], nUnknown, nil
		}
		return todo[1:], nRefused, nil
	case err != nil:
		return nil, nUnknown, err
	}
	k := min(len(ans), len(todo))
	if err := g.store(docID, todo[:k], ans[:k]); err != nil {
		return nil, nUnknown, err
	}
	if k < len(todo) {
		return todo[k:], nRefused, nil // fewer choices: n ignored (Ollama)
	}
	return nil, nHonoured, nil
}

// nState is what the server was seen to do with n > 1.
type nState int

const (
	nUnknown nState = iota
	nHonoured
	nRefused
)

// nGate lets one request find out whether the server honours n while the
// others wait, so that a server refusing n costs one wasted request, not one
// per worker.
type nGate struct {
	mu      sync.Mutex
	state   nState
	probing bool
	changed chan struct{}
}

// enter says whether to send n > 1; probe is set for the one caller that
// finds out, which must call settle.
func (n *nGate) enter(ctx context.Context) (useN, probe bool, err error) {
	for {
		n.mu.Lock()
		if n.changed == nil {
			n.changed = make(chan struct{})
		}
		switch {
		case n.state == nHonoured:
			n.mu.Unlock()
			return true, false, nil
		case n.state == nRefused:
			n.mu.Unlock()
			return false, false, nil
		case !n.probing:
			n.probing = true
			n.mu.Unlock()
			return true, true, nil
		}
		ch := n.changed
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			return false, false, ctx.Err()
		case <-ch:
		}
	}
}

// settle records what the probe found (nUnknown: another caller probes).
func (n *nGate) settle(s nState) {
	n.mu.Lock()
	n.state, n.probing = s, false
	if n.changed != nil {
		close(n.changed)
	}
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

func (n *nGate) refused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state == nRefused
}

// one fills a single slot by its own request; ok reports an answer.
func (g *generator) one(ctx context.Context, docID, qt string, sl slot) (ok bool, err error) {
	ans, err := g.gen.Generate(ctx, sl.req)
	var ie *llm.ItemError
	if errors.As(err, &ie) {
		return false, g.ref.Failed(ie.Error(), llmRefusalHint, func() error {
			g.c.Add("failed", 1)
			return g.st.PutJSON(dataset.FailKey(sl.fp), dataset.Failure{Stage: "generate", Item: dataset.QID(docID, qt, sl.sample), Reason: redact.Text(ie.Error()), Settings: g.scope})
		})
	}
	if err != nil {
		return false, err
	}
	return true, g.store(docID, []slot{sl}, ans[:1])
}

func (g *generator) store(docID string, slots []slot, ans []dataset.Answer) error {
	b := g.st.NewBatch()
	defer b.Cancel()
	for i, sl := range slots {
		if err := b.PutJSON(dataset.AnswerKey(sl.fp), ans[i]); err != nil {
			return err
		}
		if g.retryFailed {
			if err := b.Delete(dataset.FailKey(sl.fp)); err != nil {
				return err
			}
		}
		g.c.Add("prompt_tokens", int64(ans[i].PromptTokens))
		g.c.Add("completion_tokens", int64(ans[i].CompletionTokens))
	}
	g.countAnswerFlags(ans[:len(slots)])
	if err := b.Flush(); err != nil {
		return err
	}
	if err := g.ref.Succeeded(); err != nil {
		return err
	}
	if g.env != nil {
		for i, sl := range slots {
			g.env.Announce("generate", answered{DocID: docID, Type: sl.req.Type, Sample: sl.sample, Passage: sl.req.Passage, Content: ans[i].Content})
		}
	}
	g.c.Add("requests", 1)
	g.c.Add("answers", int64(len(slots)))
	return nil
}

// llmRefusalHint is the advice when every chat request gets the same refusal.
const llmRefusalHint = "the server refuses the requests themselves: check --llm-model, --max-tokens, --temperature/--top-p and --llm-extra against what this server accepts"

// countAnswerFlags counts what the answers of one request show about the
// server: a prompt it cut silently, a completion count of one choice, a
// model other than the one asked for.
func (g *generator) countAnswerFlags(ans []dataset.Answer) {
	if len(ans) == 0 {
		return
	}
	if ans[0].PromptTruncated {
		g.c.Add("answers_prompt_truncated", int64(len(ans)))
	}
	if ans[0].CompletionEstimated {
		g.c.Add("answers_completion_estimated", int64(len(ans)))
	}
	if ans[0].Model != "" && g.model != "offline" && !llm.SameModel(g.model, ans[0].Model) {
		g.c.Add("answers_model_mismatch", int64(len(ans)))
	}
}

// passagesAsked counts this shard's passages that the run's Selection asks
// about (not duplicates, not held out, in the --max-passages sample): the
// progress total is this times the slots per passage.
func passagesAsked(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, prog *pipeline.Progress) (int, error) {
	sel, err := LoadSelection(ctx, st, cfg, prog)
	if err != nil {
		return 0, err
	}
	n := 0
	err = st.Scan(pipeline.PrefixDoc, func(docID string, _ []byte) error {
		if cfg.InShard(docID) && sel.Skip(docID) == "" {
			n++
		}
		return nil
	})
	return n, err
}

// answered is an answer just stored, announced to the stages working ahead.
type answered struct {
	DocID, Type      string
	Sample           int
	Passage, Content string
}

// slot is one (passage, type, sample) query slot: its request (own seed)
// and the fingerprint its answer is stored under. The fingerprint does not
// depend on --queries-per-type, so raising it keeps the answers already paid
// for; an answer obtained as choice i of an n-request is stored as slot i's.
type slot struct {
	sample int
	req    llm.Request
	fp     string
}

// forEachGroup calls fn for every (passage, type) with its slots, in
// passage-id order, for the passages of this shard that the run's Selection
// asks about (not a duplicate, not held out, in the --max-passages sample).
// It returns how many of this shard's passages were skipped, by reason.
func forEachGroup(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, plan *genPlan,
	fn func(docID, qtype string, slots []slot) error) (map[string]int64, error) {
	sel, err := LoadSelection(ctx, st, cfg, nil)
	if err != nil {
		return nil, err
	}
	skipped := map[string]int64{}
	err = st.Scan(pipeline.PrefixDoc, func(docID string, v []byte) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !cfg.InShard(docID) {
			return nil
		}
		if why := sel.Skip(docID); why != "" {
			skipped[why]++
			return nil
		}
		var doc dataset.Passage
		if err := json.Unmarshal(v, &doc); err != nil {
			return fmt.Errorf("passage %q: %w", docID, err)
		}
		for _, qt := range cfg.QueryTypes {
			slots := make([]slot, cfg.QueriesPerType)
			for s := range slots {
				req, fp, err := plan.request(docID, doc, qt, s)
				if err != nil {
					return err
				}
				slots[s] = slot{sample: s, req: req, fp: fp}
			}
			if err := fn(docID, qt, slots); err != nil {
				return err
			}
		}
		return nil
	})
	return skipped, err
}

// forEachSlot calls fn for every (passage, type, sample) slot, in passage-id
// order, with the slot's rendered request and fingerprint. Generate and filter
// both enumerate slots through forEachGroup, so they always agree on
// fingerprints.
func forEachSlot(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, plan *genPlan,
	fn func(docID, qtype string, sample int, req llm.Request, fp string) error) (map[string]int64, error) {
	return forEachGroup(ctx, st, cfg, plan, func(docID, qt string, slots []slot) error {
		for _, sl := range slots {
			if err := fn(docID, qt, sl.sample, sl.req, sl.fp); err != nil {
				return err
			}
		}
		return nil
	})
}

// Provenance names what shaped the queries: each type's template version and
// the few-shot pool's fingerprint, as the manifest records them.
func Provenance(cfg *pipeline.Config) (templates map[string]string, pool string, err error) {
	plan, err := newGenPlan(cfg)
	if err != nil {
		return nil, "", err
	}
	return plan.tm.Versions(), plan.pool.Fingerprint(), nil
}
