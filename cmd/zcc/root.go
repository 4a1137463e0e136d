package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// it comes from the module build info.
var version = ""

func zccVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// newRootCmd builds the command tree. Subcommands register themselves in
// subcommands so each lives in its own file.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "zcc",
		Short: "Conformance and simulation harness for Zeek cluster controllers",
		Long: `zcc checks Zeek cluster controllers against the controller API.

It has a reference controller, programmable fake agents, conformance suites
and a client, all speaking Broker's WebSocket JSON transport.`,
		Version:       zccVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("zcc {{.Version}}\n")
	for _, mk := range subcommands {
		root.AddCommand(mk())
	}
	return root
}

// subcommands holds the constructors of zcc's subcommands.
var subcommands []func() *cobra.Command

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		if ee, ok := err.(*exitError); ok {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintln(stderr, "zcc:", ee.err)
			}
			return ee.code
		}
		fmt.Fprintln(stderr, "zcc:", err)
		return 2
	}
	return 0
}
