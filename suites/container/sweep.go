package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	dclient "github.com/moby/moby/client"

	"github.com/zcc-harness/zcc/suites/container/internal/engine"
)

// RunID identifies this process's containers (label zcc.run): random, made
// once per process.
var RunID = sync.OnceValue(func() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
})

// created records that this process has asked Docker for a container, so
// a sweep after a run of another target does not touch Docker at all.
var created atomic.Bool

// Sweep removes every container this process started that is still there:
// a spec's own cleanup removes its container, so Sweep finds only what an
// interrupted spec or a failed removal left. Call it after RunSpecs (zcc
// conform does). It returns how many it removed; without a Docker engine
// there is nothing to remove.
func Sweep(ctx context.Context) (int, error) {
	if !created.Load() || engine.Health() != nil {
		return 0, nil // this process never asked Docker for a container
	}
	cli, err := engine.Client()
	if err != nil {
		return 0, err
	}
	list, err := cli.ContainerList(ctx, dclient.ContainerListOptions{
		All:     true,
		Filters: make(dclient.Filters).Add("label", LabelRun+"="+RunID()),
	})
	if err != nil {
		return 0, fmt.Errorf("list this run's containers: %w", err)
	}
	var errs []error
	removed := 0
	for _, c := range list.Items {
		if _, err := cli.ContainerRemove(ctx, c.ID, dclient.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove container %.12s: %w", c.ID, err))
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}
