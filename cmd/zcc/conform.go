package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	"github.com/spf13/cobra"

	"github.com/zcc-harness/zcc/suites"
)

func init() { subcommands = append(subcommands, newConformCmd) }

// Exit codes of zcc conform: distinct so that CI can tell a controller
// that does not conform from a harness that could not test it.
const (
	exitConformFail  = 1 // at least one spec failed: the controller does not conform
	exitConformUsage = 2 // bad flags or config
	exitConformError = 3 // harness or infrastructure error: target unreachable, Docker missing when required, empty selection
)

// conformOnce guards RunSpecs, which Ginkgo allows once per process.
var conformOnce sync.Once

func newConformCmd() *cobra.Command {
	var (
		configPath string
		list       bool
		verbose    bool
		parallel   int
	)
	cmd := &cobra.Command{
		Use:   "conform",
		Short: "Run the conformance suite against a controller",
		Long: `Run zcc's compiled-in conformance suite against a controller and report,
pair by pair and behaviour by behaviour, whether it conforms.

Targets:
  inproc     the reference controller in this process (default)
  external   a controller you run, at --url (host:port or ws://…/v1/messages/json)
  container  a controller image run with Docker (--image; zcc's own image by default)

Configuration is layered: built-in defaults < --config FILE (YAML) < ZCC_*
environment variables < flags. The effective configuration is printed first.

Environment variables:
` + suites.EnvHelp() + `
Exit codes: 0 all selected specs passed (some may be skipped with a reason),
1 some failed (the controller does not conform), 2 usage or configuration
error, 3 harness or infrastructure error (unreachable target, Docker missing
when required, empty selection) or every selected spec was skipped.`,
		Args: cobra.NoArgs,
	}
	flags := suites.BindFlags(cmd.Flags())
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file")
	cmd.Flags().BoolVar(&list, "list", false, "list the specs with their labels and exit")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every spec as it runs")
	cmd.Flags().IntVar(&parallel, "parallel", 0, "run the specs in N processes (default: one per CPU, at most 4, for the inproc and container targets; 1 for external, whose controller the specs share)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out := cmd.OutOrStdout()
		cfg, err := suites.LoadConfig(configPath, os.Getenv, flags)
		if err != nil {
			return &exitError{code: exitConformUsage, err: err}
		}
		if list {
			for _, s := range suites.SpecList(cfg.Profile) {
				fmt.Fprintln(out, s)
			}
			return nil
		}
		if spec := os.Getenv(envShard); spec != "" {
			return runShard(out, cfg, spec, verbose)
		}
		n, err := parallelism(cfg, parallel)
		if err != nil {
			return &exitError{code: exitConformUsage, err: err}
		}
		if n > 1 {
			return runParallel(cmd.Context(), out, cmd.ErrOrStderr(), cfg, n, verbose)
		}
		return runConformance(out, cfg, verbose)
	}
	return cmd
}

// conformT satisfies Ginkgo's testing interface outside `go test`.
type conformT struct{ failed bool }

func (t *conformT) Fail() { t.failed = true }

func runConformance(out io.Writer, cfg suites.Config, verbose bool) error {
	ran := false
	var runErr error
	conformOnce.Do(func() {
		ran = true
		runErr = runConformanceOnce(out, cfg, verbose)
	})
	if !ran {
		return &exitError{code: exitConformError, err: errors.New("the conformance suite can run once per process")}
	}
	return runErr
}

func runConformanceOnce(out io.Writer, cfg suites.Config, verbose bool) error {
	suites.Version = "zcc " + zccVersion()
	gomega.RegisterFailHandler(ginkgo.Fail)
	suiteCfg, repCfg := ginkgo.GinkgoConfiguration()
	cfg = suites.ApplyToGinkgo(cfg, &suiteCfg)
	fmt.Fprintf(out, "zcc conform %s — effective configuration:\n%s\n\n", zccVersion(), indent(cfg.YAML()))
	suites.Register(func() suites.Config { return cfg })
	repCfg.Verbose = verbose
	repCfg.NoColor = !isTerminal(out)
	if cfg.ReportDir != "" {
		if err := os.MkdirAll(cfg.ReportDir, 0o755); err != nil {
			return &exitError{code: exitConformError, err: fmt.Errorf("report dir: %w", err)}
		}
		repCfg.JUnitReport = filepath.Join(cfg.ReportDir, "junit.xml")
	}
	t := &conformT{}
	ginkgo.RunSpecs(t, "zcc conformance", suiteCfg, repCfg)

	report, ok := suites.LastReport("")
	if !ok {
		// Ginkgo stopped before the report node ran (e.g. nothing selected).
		return &exitError{code: exitConformError, err: errors.New("no spec ran: check the label filter and focus")}
	}
	return finishConformance(out, cfg, report)
}

// finishConformance prints the summary and turns the result into the exit
// code.
func finishConformance(out io.Writer, cfg suites.Config, report suites.ConformanceReport) error {
	fmt.Fprintf(out, "\n%s", report.SummaryTable())
	if cfg.ReportDir != "" {
		fmt.Fprintf(out, "reports: %s\n", strings.Join([]string{
			filepath.Join(cfg.ReportDir, "conformance-report.md"),
			filepath.Join(cfg.ReportDir, "conformance-report.json"),
			filepath.Join(cfg.ReportDir, "conformance-report.yaml"),
			filepath.Join(cfg.ReportDir, "junit.xml"),
		}, ", "))
	}
	switch report.Result {
	case suites.OutcomePass:
		return nil
	case suites.OutcomeFail:
		return &exitError{code: exitConformFail, err: errors.New("the controller does not conform")}
	case suites.OutcomeSkip:
		return &exitError{code: exitConformError, err: errors.New("nothing was tested: every selected spec was skipped (see the reasons above)")}
	default:
		return &exitError{code: exitConformError, err: errors.New("the harness could not complete the run (see ERROR lines)")}
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
