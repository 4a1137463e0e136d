package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/reporters"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"

	"github.com/zcc-harness/zcc/suites"
)

// A parallel run re-executes zcc once per shard; these variables tell a
// child which shard it runs and where its Ginkgo JSON report goes.
const (
	envShard       = "ZCC_CONFORM_SHARD"        // "i/N", i from 0
	envShardReport = "ZCC_CONFORM_SHARD_REPORT" // path of the child's Ginkgo JSON report
)

// parallelism decides how many processes run the specs. Ginkgo runs specs
// one at a time per process, and most specs spend their time waiting on
// the controller's timers, so a few processes finish a run several times
// faster. An external controller is shared by every spec, so its specs
// run one at a time.
func parallelism(cfg suites.Config, asked int) (int, error) {
	switch {
	case asked < 0:
		return 0, fmt.Errorf("--parallel must not be negative, got %d", asked)
	case asked > 0:
		if asked > 1 && cfg.Target.Mode == suites.TargetExternal {
			return 0, errors.New("--parallel > 1 needs a controller per spec: the external target's controller is shared")
		}
		return asked, nil
	case cfg.Target.Mode == suites.TargetExternal:
		return 1, nil
	}
	return min(runtime.NumCPU(), 4), nil
}

// runParallel runs the suite in n child processes, one shard each, and
// merges their reports into one.
func runParallel(ctx context.Context, out, errOut io.Writer, cfg suites.Config, n int, verbose bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	suites.Version = "zcc " + zccVersion()
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().Unix() // one seed for every shard, recorded in the report
	}
	fmt.Fprintf(out, "zcc conform %s — effective configuration:\n%s\n\n", zccVersion(), indent(cfg.YAML()))
	dir, err := os.MkdirTemp("", "zcc-conform-")
	if err != nil {
		return &exitError{code: exitConformError, err: err}
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.YAML()+"\n"), 0o600); err != nil {
		return &exitError{code: exitConformError, err: err}
	}
	exe, err := os.Executable()
	if err != nil {
		return &exitError{code: exitConformError, err: fmt.Errorf("find zcc's own executable: %w", err)}
	}
	fmt.Fprintf(out, "Running the suite in %d processes (--parallel %d)\n", n, n)
	start := time.Now()
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		errs    = make([]error, n)
		outputs = make([]bytes.Buffer, n)
	)
	// Children print one progress character per spec on stderr, shown
	// live; Ginkgo's own output (failure details) is kept and shown after
	// the run when it says something.
	progress := &lockedWriter{w: out, mu: &mu}
	for i := 0; i < n; i++ {
		args := []string{"conform", "--config", cfgPath}
		if verbose {
			args = append(args, "--verbose")
		}
		child := exec.CommandContext(ctx, exe, args...)
		child.Env = append(os.Environ(),
			fmt.Sprintf("%s=%d/%d", envShard, i, n),
			envShardReport+"="+filepath.Join(dir, "shard-"+strconv.Itoa(i)+".json"),
		)
		child.Stdout, child.Stderr = &outputs[i], progress
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = child.Run()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	fmt.Fprintln(out)
	for i := range outputs {
		if text := shardDetails(outputs[i].String()); text != "" {
			fmt.Fprintf(errOut, "--- shard %d/%d ---\n%s\n", i+1, n, text)
		}
	}

	var shards []types.Report
	for i := 0; i < n; i++ {
		path := filepath.Join(dir, "shard-"+strconv.Itoa(i)+".json")
		raw, err := os.ReadFile(path)
		if err != nil {
			return &exitError{code: exitConformError, err: fmt.Errorf("shard %d/%d produced no report (%v): %w", i+1, n, errs[i], err)}
		}
		var reps []types.Report
		if err := json.Unmarshal(raw, &reps); err != nil {
			return &exitError{code: exitConformError, err: fmt.Errorf("shard %d/%d report %s: %w", i+1, n, path, err)}
		}
		shards = append(shards, reps...)
	}
	report, merged := suites.MergeShardReports(cfg, shards, elapsed)
	fmt.Fprintf(out, "\nRan %d specs in %d processes in %.3f seconds\n", len(report.Specs), n, elapsed.Seconds())
	if cfg.ReportDir != "" {
		if err := report.WriteFiles(cfg.ReportDir); err != nil {
			return &exitError{code: exitConformError, err: err}
		}
		if err := reporters.GenerateJUnitReport(merged, filepath.Join(cfg.ReportDir, "junit.xml")); err != nil {
			return &exitError{code: exitConformError, err: fmt.Errorf("junit report: %w", err)}
		}
	}
	return finishConformance(out, cfg, report)
}

// runShard is a child of runParallel: it runs one shard and leaves the
// summary to the parent.
func runShard(out io.Writer, cfg suites.Config, spec string, verbose bool) error {
	i, n, ok := parseShard(spec)
	if !ok {
		return &exitError{code: exitConformUsage, err: fmt.Errorf("%s=%q: want i/N", envShard, spec)}
	}
	if err := suites.SetShard(i, n); err != nil {
		return &exitError{code: exitConformUsage, err: err}
	}
	suites.Version = "zcc " + zccVersion()
	gomega.RegisterFailHandler(ginkgo.Fail)
	suiteCfg, repCfg := ginkgo.GinkgoConfiguration()
	cfg = suites.ApplyToGinkgo(cfg, &suiteCfg)
	suiteCfg.FailOnEmpty = false // a shard may hold none of the selected specs; the parent judges the whole
	suites.ShardProgress = os.Stderr
	suites.Register(func() suites.Config { return cfg })
	repCfg.Succinct = !verbose
	repCfg.Verbose = verbose
	repCfg.NoColor = !isTerminal(out)
	repCfg.JSONReport = os.Getenv(envShardReport)
	if repCfg.JSONReport == "" {
		return &exitError{code: exitConformUsage, err: fmt.Errorf("%s is not set", envShardReport)}
	}
	ran := false
	conformOnce.Do(func() {
		ran = true
		ginkgo.RunSpecs(&conformT{}, fmt.Sprintf("zcc conformance (shard %d/%d)", i+1, n), suiteCfg, repCfg)
	})
	if !ran {
		return &exitError{code: exitConformError, err: errors.New("the conformance suite can run once per process")}
	}
	return nil
}

// shardDetails keeps what a shard's Ginkgo output says beyond its
// one-line header and success line: failure reports, warnings.
func shardDetails(s string) string {
	s = shardHeader.ReplaceAllString(s, "")
	s = strings.TrimSpace(shardSuccess.ReplaceAllString(s, ""))
	return strings.Trim(s, "•S ")
}

var (
	shardHeader  = regexp.MustCompile(`\[\d+\] zcc conformance \(shard \d+/\d+\) - \d+/\d+ specs ?`)
	shardSuccess = regexp.MustCompile(`SUCCESS! [0-9.]+[µmn]?s ?`)
)

func parseShard(s string) (int, int, bool) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, false
	}
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return i, n, err1 == nil && err2 == nil && n > 0 && i >= 0 && i < n
}

// lockedWriter serialises the children's writes so their lines do not
// interleave mid-write.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
