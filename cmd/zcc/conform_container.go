package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/zcc-harness/zcc/suites/container"
)

// sweepAnnotation marks a conform command that sweeps its containers.
const sweepAnnotation = "zcc.container-sweep"

// The container target registers itself with the suites when imported.
// Ryuk is off, so after a conform run the harness itself removes any
// container of this run that a spec could not release (an interrupted
// spec, a failed removal), whatever the run's outcome.
func init() {
	for i, mk := range subcommands {
		if mk().Name() == "conform" {
			subcommands[i] = withContainerSweep(mk)
		}
	}
}

func withContainerSweep(mk func() *cobra.Command) func() *cobra.Command {
	return func() *cobra.Command {
		cmd := mk()
		run := cmd.RunE
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			n, serr := container.Sweep(ctx)
			if n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "zcc conform: removed %d leftover controller containers of this run\n", n)
			}
			if serr != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "zcc conform: container sweep: %v\n", serr)
			}
			return err
		}
		if cmd.Annotations == nil {
			cmd.Annotations = map[string]string{}
		}
		cmd.Annotations[sweepAnnotation] = "true"
		return cmd
	}
}
