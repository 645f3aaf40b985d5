// Command synthq makes training data for domain-specialised dense retrievers:
// LLM-written queries, first-pass candidates, cross-encoder teacher scores,
// exported as Arrow/Parquet for listwise distillation.
//
// Exit status: 0 done; 1 error; 2 usage error (unknown command or flag, a
// required flag missing, a malformed value); 3 done, but some items failed (see
// `synthq stats`; re-run with --retry-failed); 130 interrupted (re-run the
// same command to resume).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/pipeline"
)

// Exit codes.
const (
	exitError       = 1
	exitUsage       = 2
	exitFailedItems = 3
	exitInterrupted = 130
)

// failedItemsError is returned when a run completes with failed items
// (more than --tolerate-failed of the queries asked, when it is set).
type failedItemsError struct {
	n, asked  int
	tolerated float64
	what      string // what failed, when not the run's items
}

func (e failedItemsError) Error() string {
	if e.what != "" {
		return fmt.Sprintf("done with %d %s", e.n, e.what)
	}
	over := ""
	if e.tolerated > 0 {
		over = fmt.Sprintf(", %.2f%% of %d queries asked, above --tolerate-failed %g", 100*float64(e.n)/float64(max(e.asked, 1)), e.asked, e.tolerated)
	}
	return fmt.Sprintf("done with %d failed items%s (see `synthq stats`; re-run with --retry-failed to try them again)", e.n, over)
}

// main stops gracefully: the first SIGINT/SIGTERM stops new work and lets
// the requests in flight answer (up to --grace; their answers are stored),
// the second abandons them.
func main() {
	st := pipeline.NewStopper(context.Background())
	defer st.Close()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for range sigs {
			st.Stop(os.Stderr)
		}
	}()
	gcPercent(os.Getenv("GOGC"))
	stopProfile := cpuProfile(os.Getenv("SYNTHQ_CPUPROFILE"), os.Stderr)
	stopMem := peakHeapProfile(os.Getenv("SYNTHQ_MEMPROFILE"), os.Stderr)
	code := runMain(st.Hard, os.Args, os.Stdout, os.Stderr)
	stopMem()
	stopProfile()
	os.Exit(code)
}

// cpuProfile starts a pprof CPU profile written to path when path is set
// (SYNTHQ_CPUPROFILE: where the CPU per request goes, see BENCHMARKS.md)
// and returns the function that ends it; a profile that cannot be written
// is a warning, never a failed run.
func cpuProfile(path string, log io.Writer) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(log, "warning: SYNTHQ_CPUPROFILE: %v\n", err)
		if f != nil {
			f.Close()
		}
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// defaultGCPercent is the Go collector's GOGC when the environment sets
// none: the heap may grow to 1.5× what is live between collections, not 2×.
// At 1M passages the live heap peaks near 0.8 GB (the BM25 index, the
// passages label reads ahead) and the default let the heap reach 1.5 GB
// there, the run's peak RSS; the collector's share of the run's CPU went
// from 3 % to 4 % (634 → 1,012 collections; BENCHMARKS.md "Millions of
// passages").
const defaultGCPercent = 50

// gcPercent sets the collector's GOGC to defaultGCPercent unless the
// environment's GOGC (env) says otherwise, which the Go runtime has
// applied already.
func gcPercent(env string) {
	if env == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// peakHeapProfile writes a pprof heap profile to path (SYNTHQ_MEMPROFILE)
// each time the heap in use passes its highest so far by 10%, checked every
// 2 s, so the file ends up naming what held memory at the run's peak (see
// BENCHMARKS.md "Millions of passages"). A profile that cannot be written is
// a warning.
func peakHeapProfile(path string, log io.Writer) func() {
	if path == "" {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var peak uint64
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse < peak+peak/10 {
				continue
			}
			peak = ms.HeapInuse
			f, err := os.Create(path)
			if err == nil {
				err = pprof.WriteHeapProfile(f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				fmt.Fprintf(log, "warning: SYNTHQ_MEMPROFILE: %v\n", err)
				return
			}
		}
	}()
	return func() { close(stop); <-done }
}

// runMain runs the CLI and returns the exit status; tests call it directly.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, interleave(app.Commands, args))
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "synthq: "+ue.msg)
		return exitUsage
	case errors.Is(err, pipeline.ErrInterrupted) || (ctx.Err() != nil && errors.Is(err, context.Canceled)) ||
		(pipeline.StopperFrom(ctx) != nil && pipeline.StopperFrom(ctx).Soft.Err() != nil && errors.Is(err, context.Canceled)):
		fmt.Fprintln(stderr, "synthq: "+pipeline.ErrInterrupted.Error())
		return exitInterrupted
	}
	fmt.Fprintln(stderr, "synthq: "+redact.Text(err.Error()))
	var fe failedItemsError
	if errors.As(err, &fe) {
		return exitFailedItems
	}
	return exitError
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "synthq",
		Usage: "make training data for domain-specialised dense retrievers",
		Description: `Try it with no server, on the small corpus in testdata/:
   synthq run --offline --corpus testdata/corpus.jsonl --out out/ --min-candidates 5

synthq COMMAND --help lists a command's flags, grouped by concern.`,
		HideVersion: true, // our own --version and version command (versionString)
		// cli.HelpFlag by hand: urfave adds it only beside its own help
		// command, which helpCommand replaces.
		Flags:          []cli.Flag{&cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version"}, cli.HelpFlag},
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		Action:         unknownCommand,
		// Prefixes and instructions may hold commas; list flags that take
		// comma lists (--llm-url) split them themselves.
		DisableSliceFlagSeparator: true,
		Commands: []*cli.Command{runCommand(), prepareCommand(), exportCommand(), statsCommand(), inspectCommand(), evalCommand(),
			adaptCommand(), reportCommand(), versionCommand(), helpCommand()},
	}
	for _, cmd := range app.Commands {
		setCategories(cmd)
		requireFlags(cmd)
		cmd.OnUsageError = onUsageError
		cmd.CustomHelpTemplate = helpTemplate(cmd)
	}
	return app
}
