package container

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	dclient "github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/suites"
	"github.com/zcc-harness/zcc/suites/container/internal/engine"
)

// Labels on every container of the harness. LabelRun carries this
// process's run ID, which Sweep removes.
const (
	LabelHarness = "zcc.harness"
	LabelRun     = "zcc.run"
	LabelSpec    = "zcc.spec"
)

// Bounds of the operations that have no spec context (Release, Logs).
const (
	releaseTimeout = 30 * time.Second
	logsTimeout    = 10 * time.Second
	// stopGrace is how long a restart lets the controller shut down on
	// SIGTERM before Docker kills it.
	stopGrace = 5 * time.Second
	// maxPortAttempts: a host port picked free can be taken by someone else
	// before Docker binds it; the start is then retried on another port.
	maxPortAttempts = 3
	// maxLogBytes caps the log attached to a failed spec (the tail is kept).
	maxLogBytes = 1 << 20
)

var (
	errPortTaken = errors.New("host port taken")
	loopback     = netip.MustParseAddr("127.0.0.1")
)

// controllerContainer is one spec's controller. Its host port is fixed
// for its lifetime, so a restarted or re-started controller is at the same
// URL and fake agents reconnect to it on their own.
type controllerContainer struct {
	t        *target
	ctr      *testcontainers.DockerContainer
	hostPort int
	url      string

	mu       sync.Mutex
	events   bytes.Buffer // the harness's own account: starts, faults, readiness
	paused   bool
	released bool
}

func (t *target) start(ctx context.Context, spec suites.SpecInfo) (*controllerContainer, error) {
	hostPort, err := pickPort()
	if err != nil {
		return nil, err
	}
	cport, err := network.ParsePort(t.containerPort())
	if err != nil {
		return nil, fmt.Errorf("container port %s: %w", t.containerPort(), err)
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithLogger(engine.Logger),
		testcontainers.WithExposedPorts(cport.String()),
		testcontainers.WithEnv(t.env(spec)),
		testcontainers.WithLabels(map[string]string{LabelHarness: "zcc", LabelRun: RunID(), LabelSpec: spec.Prefix}),
		// Published on the loopback only, at a port kept across restarts.
		testcontainers.WithHostConfigModifier(func(hc *dcontainer.HostConfig) {
			hc.PortBindings = network.PortMap{cport: {{HostIP: loopback, HostPort: strconv.Itoa(hostPort)}}}
		}),
	}
	if cmd := t.command(); len(cmd) > 0 {
		opts = append(opts, testcontainers.WithCmd(cmd...))
	}
	began := time.Now()
	created.Store(true)
	ctr, err := testcontainers.Run(ctx, t.image, opts...)
	if err != nil {
		if ctr != nil {
			removeCtx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			_ = ctr.Terminate(removeCtx, testcontainers.StopTimeout(0))
			cancel()
		}
		if isPortTaken(err) {
			return nil, fmt.Errorf("%w: 127.0.0.1:%d: %v", errPortTaken, hostPort, err)
		}
		return nil, fmt.Errorf("run image %s: %w", t.image, err)
	}
	c := &controllerContainer{
		t:        t,
		ctr:      ctr,
		hostPort: hostPort,
		url:      fmt.Sprintf("ws://127.0.0.1:%d/v1/messages/json", hostPort),
	}
	c.logf("container %.12s (image %s) created and started in %s; controller at %s", ctr.GetContainerID(), t.image, time.Since(began).Round(time.Millisecond), c.url)
	if err := c.waitReady(ctx, began, ""); err != nil {
		logs := c.Logs()
		_ = c.Release()
		return nil, fmt.Errorf("%w\n%s", err, logs)
	}
	return c, nil
}

// pickPort finds a free port on 127.0.0.1 for the container's binding,
// preferring ports below the usual ephemeral range (32768+) so that no
// outgoing connection takes it while a restarted controller is down.
func pickPort() (int, error) {
	for range 20 {
		p := 20000 + rand.IntN(12000)
		if portFree(p) {
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func isPortTaken(err error) bool {
	s := err.Error()
	return strings.Contains(s, "port is already allocated") || strings.Contains(s, "address already in use")
}

func (c *controllerContainer) URL() string { return c.url }

// logf records a harness event with its time, for the log of failed specs.
func (c *controllerContainer) logf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(&c.events, "%s %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Logs returns the container's output followed by the harness's account of
// it (starts, faults, readiness).
func (c *controllerContainer) Logs() string {
	ctx, cancel := context.WithTimeout(context.Background(), logsTimeout)
	defer cancel()
	var b strings.Builder
	if rc, err := c.ctr.Logs(ctx); err != nil {
		fmt.Fprintf(&b, "(container log unavailable: %v)\n", err)
	} else {
		out, err := io.ReadAll(rc)
		_ = rc.Close()
		if len(out) > maxLogBytes {
			fmt.Fprintf(&b, "(first %d bytes cut)\n", len(out)-maxLogBytes)
			out = out[len(out)-maxLogBytes:]
		}
		b.Write(out)
		if err != nil {
			fmt.Fprintf(&b, "(container log incomplete: %v)\n", err)
		}
	}
	c.mu.Lock()
	fmt.Fprintf(&b, "--- harness ---\n%s", c.events.String())
	c.mu.Unlock()
	return b.String()
}

// Release removes the container. A paused container is unpaused first,
// since not every engine kills a frozen process.
func (c *controllerContainer) Release() error {
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return nil
	}
	c.released = true
	paused := c.paused
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if paused {
		if cli, err := engine.Client(); err == nil {
			_, _ = cli.ContainerUnpause(ctx, c.ctr.GetContainerID(), dclient.ContainerUnpauseOptions{})
		}
	}
	if err := c.ctr.Terminate(ctx, testcontainers.StopTimeout(0)); err != nil {
		return fmt.Errorf("remove controller container %.12s: %w", c.ctr.GetContainerID(), err)
	}
	return nil
}

// --- readiness ------------------------------------------------------------

// waitReady waits, within timeouts.connect, for the ready log line of the
// current start (logged after since, Docker's time of the previous stop)
// and then for a get_instances answer over the WebSocket: an open port is
// not a ready controller.
func (c *controllerContainer) waitReady(ctx context.Context, began time.Time, since string) error {
	ctx, cancel := context.WithTimeout(ctx, c.t.cfg.Timeouts.Connect)
	defer cancel()
	if c.t.readyLog != nil {
		if err := c.waitLog(ctx, since); err != nil {
			return err
		}
		c.logf("ready log line %q after %s", c.t.readyLog, time.Since(began).Round(time.Millisecond))
	}
	if err := c.probe(ctx); err != nil {
		return err
	}
	c.logf("ready (get_instances answered) after %s", time.Since(began).Round(time.Millisecond))
	return nil
}

// waitLog follows the container's log from since (empty: from the first
// line) until a line matches the ready expression. Lines of earlier runs
// (before a restart) were logged before the stop, so they never count.
// (Docker's StartedAt would not do: the daemon records it after the
// process may already have logged.)
func (c *controllerContainer) waitLog(ctx context.Context, since string) error {
	cli, err := engine.Client()
	if err != nil {
		return err
	}
	rc, err := cli.ContainerLogs(ctx, c.ctr.GetContainerID(), dclient.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: true, Since: since,
	})
	if err != nil {
		return fmt.Errorf("follow the container log: %w", err)
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	defer pr.Close() // ends the copier below once the line is found
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		pw.CloseWithError(err)
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if c.t.readyLog.Match(sc.Bytes()) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("no log line matching %q within %s (timeouts.connect)", c.t.readyLog, c.t.cfg.Timeouts.Connect)
	}
	return fmt.Errorf("the container's log ended before a line matching %q (did the controller exit?): %v", c.t.readyLog, sc.Err())
}

// probe dials the controller and asks for its instances until it answers.
// Refused or reset connections are expected while the controller starts;
// a container that has exited ends the wait at once.
func (c *controllerContainer) probe(ctx context.Context) error {
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.probeOnce(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("controller at %s not ready within %s (timeouts.connect), %d probes; last: %w", c.url, c.t.cfg.Timeouts.Connect, attempt, err)
		}
		if st, serr := c.ctr.State(ctx); serr == nil && !st.Running && !st.Paused {
			return fmt.Errorf("controller container exited (status %s, exit code %d) before it answered: %w", st.Status, st.ExitCode, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// probeOnce is one WebSocket handshake and one get_instances round trip.
func (c *controllerContainer) probeOnce(ctx context.Context) error {
	cl, err := client.Dial(ctx, c.url, client.Options{Profile: c.t.profile})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, c.t.cfg.Timeouts.ResponseWait)
	defer cancel()
	if _, err := cl.GetInstances(rctx); err != nil {
		return fmt.Errorf("get_instances: %w", err)
	}
	return nil
}

// --- faults ---------------------------------------------------------------

// Restart stops the controller gracefully (SIGTERM, then SIGKILL after
// stopGrace) and starts it again at the same URL, returning once it is
// ready.
func (c *controllerContainer) Restart(ctx context.Context) error {
	grace := stopGrace
	began := time.Now()
	if err := c.ctr.Stop(ctx, &grace); err != nil {
		return fmt.Errorf("stop the controller container: %w", err)
	}
	c.logf("fault: stopped (restart) in %s", time.Since(began).Round(time.Millisecond))
	return c.Start(ctx)
}

// Pause freezes the controller's processes (docker pause): connections
// stay open, nothing is answered.
func (c *controllerContainer) Pause(ctx context.Context) error {
	cli, err := engine.Client()
	if err != nil {
		return err
	}
	if _, err := cli.ContainerPause(ctx, c.ctr.GetContainerID(), dclient.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("pause the controller container: %w", err)
	}
	c.mu.Lock()
	c.paused = true
	c.mu.Unlock()
	c.logf("fault: paused")
	return nil
}

// Unpause thaws a paused controller.
func (c *controllerContainer) Unpause(ctx context.Context) error {
	cli, err := engine.Client()
	if err != nil {
		return err
	}
	if _, err := cli.ContainerUnpause(ctx, c.ctr.GetContainerID(), dclient.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("unpause the controller container: %w", err)
	}
	c.mu.Lock()
	c.paused = false
	c.mu.Unlock()
	c.logf("fault: unpaused")
	return nil
}

// Kill sends SIGKILL and returns once the container is down.
func (c *controllerContainer) Kill(ctx context.Context) error {
	cli, err := engine.Client()
	if err != nil {
		return err
	}
	id := c.ctr.GetContainerID()
	// Ask for the end before causing it, so it cannot be missed.
	wait := cli.ContainerWait(ctx, id, dclient.ContainerWaitOptions{Condition: dcontainer.WaitConditionNotRunning})
	if _, err := cli.ContainerKill(ctx, id, dclient.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("kill the controller container: %w", err)
	}
	select {
	case res := <-wait.Result:
		c.logf("fault: killed (exit code %d)", res.StatusCode)
		return nil
	case err := <-wait.Error:
		return fmt.Errorf("wait for the killed controller container to stop: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("the killed controller container did not stop: %w", ctx.Err())
	}
}

// Start starts a stopped or killed controller again and waits until it is
// ready.
func (c *controllerContainer) Start(ctx context.Context) error {
	insp, err := c.ctr.Inspect(ctx)
	if err != nil {
		return fmt.Errorf("inspect the controller container: %w", err)
	}
	if insp.State == nil || insp.State.Running {
		return errors.New("start the controller container: it is running; stop or kill it first")
	}
	stopped := insp.State.FinishedAt
	began := time.Now()
	if err := c.ctr.Start(ctx); err != nil {
		return fmt.Errorf("start the controller container: %w", err)
	}
	c.logf("fault: started again")
	return c.waitReady(ctx, began, stopped)
}
