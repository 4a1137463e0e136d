package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zcc-harness/zcc/scenarios" // also adds the scenario library to the suite zcc conform runs
	"github.com/zcc-harness/zcc/suites"
)

func init() { subcommands = append(subcommands, newScenarioCmd) }

// runLabel marks the specs `zcc scenario run` defines for its arguments,
// so that the run selects exactly those.
const runLabel = "scenario-run"

func newScenarioCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scenario",
		Short: "Validate, list, describe and run YAML scenarios",
		Long: `A scenario is one YAML file describing a case against a cluster controller:
fake agents, how each misbehaves, the requests to send and what must come
back. See docs/scenarios.md for the format.

The library of scenarios compiled into zcc runs as part of zcc conform
(label "scenario"); zcc scenario run runs just the files or library
scenarios you name, against any target.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newScenarioValidateCmd(), newScenarioSchemaCmd(), newScenarioListCmd(), newScenarioRunCmd())
	return cmd
}

func newScenarioValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check scenario files and report every problem as file:line:col",
		Long: `Check scenario files: their YAML, keys and types, references between
steps and agents, behaviour IDs, and timeouts that cannot work against the
in-process reference controller or a controller with Zeek's own timing.
Every problem is printed as file:line:col: what is wrong.

Exit codes: 0 all files valid, 1 problems found, 2 usage.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			out := cmd.OutOrStdout()
			list, err := scenarios.LoadFiles(files...)
			for _, s := range list {
				if !hasErrorsFor(err, s.File()) {
					fmt.Fprintf(out, "ok  %s: scenario %s (%s, %d agents, %d steps)\n", s.File(), s.Name, s.Profile, agentCount(s), len(s.Steps))
				}
			}
			if err == nil {
				return nil
			}
			var problems scenarios.ErrorList
			if !errors.As(err, &problems) {
				return &exitError{code: 1, err: err}
			}
			for _, p := range problems {
				fmt.Fprintln(out, p)
			}
			noun := "problems"
			if len(problems) == 1 {
				noun = "problem"
			}
			return &exitError{code: 1, err: fmt.Errorf("%d %s", len(problems), noun)}
		},
	}
}

func hasErrorsFor(err error, file string) bool {
	var problems scenarios.ErrorList
	if !errors.As(err, &problems) {
		return err != nil
	}
	for _, p := range problems {
		if p.File == file {
			return true
		}
	}
	return false
}

func agentCount(s *scenarios.Scenario) int {
	n := 0
	for _, a := range s.Agents {
		n += max(a.Count, 1)
	}
	return n
}

func newScenarioSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the scenario format (for editors)",
		Long: `Print a JSON Schema (draft 2020-12) of the scenario format, generated from
the same Go types the loader decodes with. Point an editor's YAML language
server at it for completion and inline checks, e.g. with a first line
# yaml-language-server: $schema=scenario.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := scenarios.Schema()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", raw)
			return err
		},
	}
}

func newScenarioListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the scenario library compiled into zcc",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := scenarios.Library()
			if err != nil {
				return &exitError{code: 3, err: fmt.Errorf("the compiled-in library is broken:\n%w", err)}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				type entry struct {
					Name    string   `json:"name"`
					File    string   `json:"file"`
					Profile string   `json:"profile"`
					Quirks  string   `json:"quirks"`
					Covers  []string `json:"covers"`
					Summary string   `json:"summary"`
				}
				var entries []entry
				for _, s := range list {
					entries = append(entries, entry{s.Name, s.File(), s.Profile, string(s.Quirks), s.Covers, s.Summary()})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			for _, s := range list {
				fmt.Fprintf(out, "%-38s %-5s %-7s %s\n", s.Name, s.Profile, s.Quirks, s.Summary())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newScenarioRunCmd() *cobra.Command {
	var (
		configPath string
		verbose    bool
	)
	cmd := &cobra.Command{
		Use:   "run FILE|NAME... [flags]",
		Short: "Run scenario files (or library scenarios by name) against a controller",
		Long: `Run the named scenarios as a conformance run restricted to them: the same
targets, flags, configuration layers, reports and exit codes as zcc conform.
An argument that is not a file names a scenario of the compiled-in library.

When every scenario speaks the same profile and none was asked for, the run
uses it; against the in-process reference controller, when every scenario
expects the same quirk mode and none was asked for, the reference controller
runs in that mode.

Environment variables:
` + suites.EnvHelp() + `
Exit codes: 0 all passed (some may be skipped with a reason), 1 a scenario
failed, 2 usage or invalid scenario files, 3 harness or infrastructure error,
or every scenario was skipped (nothing was tested).`,
		Args: cobra.MinimumNArgs(1),
	}
	flags := suites.BindFlags(cmd.Flags())
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every spec as it runs")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		out := cmd.OutOrStdout()
		list, err := resolveScenarios(args)
		if err != nil {
			return &exitError{code: exitConformUsage, err: err}
		}
		cfg, err := suites.LoadConfig(configPath, os.Getenv, flags)
		if err != nil {
			return &exitError{code: exitConformUsage, err: err}
		}
		if p, ok := commonProfile(list); ok && !cmd.Flags().Changed("profile") && os.Getenv("ZCC_PROFILE") == "" && configPath == "" {
			cfg.Profile = p
		}
		if mode, ok := commonQuirks(list); ok && cfg.Target.Mode == suites.TargetInproc && !cmd.Flags().Changed("quirks") && os.Getenv("ZCC_QUIRKS") == "" && configPath == "" {
			cfg.Target.Quirks = mode
		}
		filter := runLabel
		if cfg.LabelFilter != "" {
			filter += " && (" + cfg.LabelFilter + ")"
		}
		cfg.LabelFilter = filter
		scenarios.Define(list, runLabel)
		names := make([]string, len(list))
		for i, s := range list {
			names[i] = s.Name
		}
		fmt.Fprintf(out, "zcc scenario run: %s\n", strings.Join(names, ", "))
		return runConformance(out, cfg, verbose)
	}
	return cmd
}

// resolveScenarios loads each argument as a file, or else finds it in the
// library by name.
func resolveScenarios(args []string) ([]*scenarios.Scenario, error) {
	var files []string
	var named []string
	for _, a := range args {
		if _, err := os.Stat(a); err == nil {
			files = append(files, a)
			continue
		}
		named = append(named, a)
	}
	list, err := scenarios.LoadFiles(files...)
	if err != nil {
		return nil, err
	}
	if len(named) > 0 {
		lib, libErr := scenarios.Library()
		byName := map[string]*scenarios.Scenario{}
		for _, s := range lib {
			byName[s.Name] = s
		}
		for _, n := range named {
			s, ok := byName[n]
			if !ok {
				if libErr != nil {
					return nil, fmt.Errorf("%s: no such file, and the library does not load: %w", n, libErr)
				}
				return nil, fmt.Errorf("%s: no such file, and no library scenario of that name (zcc scenario list)", n)
			}
			list = append(list, s)
		}
	}
	seen := map[string]string{}
	for _, s := range list {
		if prev, dup := seen[s.Name]; dup {
			return nil, fmt.Errorf("%s and %s are both scenario %s; run them separately", prev, s.File(), s.Name)
		}
		seen[s.Name] = s.File()
	}
	return list, nil
}

// commonProfile returns the profile every scenario speaks, if they agree.
func commonProfile(list []*scenarios.Scenario) (string, bool) {
	p := ""
	for _, s := range list {
		if p != "" && p != s.Profile {
			return "", false
		}
		p = s.Profile
	}
	return p, p != ""
}

// commonQuirks returns the quirk mode every scenario that names one
// expects, if they agree and at least one names one.
func commonQuirks(list []*scenarios.Scenario) (string, bool) {
	mode := ""
	for _, s := range list {
		if s.Quirks == scenarios.QuirksAny {
			continue
		}
		if mode != "" && mode != string(s.Quirks) {
			return "", false
		}
		mode = string(s.Quirks)
	}
	return mode, mode != ""
}
