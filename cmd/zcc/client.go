package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/zeekini"
)

func init() { subcommands = append(subcommands, newClientCmd) }

// connectRetryDelay is zeek-client 0.2's connect_retry_delay_secs.
const connectRetryDelay = 250 * time.Millisecond

// errReported ends a command with exit code 1 after it has written its
// own diagnostics, so run adds nothing.
var errReported = &exitError{code: 1, err: errors.New("")}

// clientFlags are the options every `zcc client` command shares.
type clientFlags struct {
	controller string
	timeout    time.Duration
	profile    string
	reqid      string
	attempts   int
	retryDelay time.Duration
	// verbose and quiet are zeek-client's -v and -q (profile mgmt).
	verbose int
	quiet   bool
}

// clientCommand describes one `zcc client` command. A profile offers the
// command only when it has every event in needs, so a dialect's commands
// are added to clientCommands without touching the others.
type clientCommand struct {
	needs []api.EventKind
	build func(f *clientFlags) *cobra.Command
}

var clientCommands = []clientCommand{
	{needs: []api.EventKind{api.KindGetInstancesRequest, api.KindGetInstancesResponse}, build: newGetInstancesCmd},
	{needs: []api.EventKind{api.KindSetConfigurationRequest, api.KindSetConfigurationResponse}, build: newSetConfigCmd},
	{needs: []api.EventKind{api.KindTestTimeoutRequest, api.KindTestTimeoutResponse}, build: newTestTimeoutCmd},
	{build: newMonitorCmd},
}

func init() { clientCommands = append(clientCommands, mgmtCommands...) }

func newClientCmd() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "client [flags] COMMAND",
		Short: "Send requests to a cluster controller, as zeek-client does",
		Long: `Send requests to a cluster controller over Broker's WebSocket transport and
print the answers, in the manner of zeek-client 0.2 (the ClusterController era)
or, with --profile mgmt, exactly as zeek-client 1.5 does (Zeek 5.2 and later:
get-instances, stage-config, deploy, deploy-config, get-config, get-nodes,
get-id-value, restart, test-timeout; default controller 127.0.0.1:2149, 10
connection attempts 1s apart, its INI format, output, messages and exit
codes; -v shows its warnings, -q hides its errors).

Each command opens one connection, publishes one request on the profile's
controller topic and waits for the response with the same reqid; responses
meant for other clients are skipped. Output is JSON with sorted keys.

Exit status: 0 on success; 1 when a Result failed, no response arrived within
--timeout, or the controller could not be reached; 2 on usage errors,
including a configuration file that does not parse (nothing is sent then).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &exitError{code: 2, err: errors.New("client: missing command (get-instances, set-config, test-timeout or monitor; see zcc client --help)")}
			}
			return &exitError{code: 2, err: fmt.Errorf("client: unknown command %q (see zcc client --help)", args[0])}
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.controller, "controller", "", "controller as HOST:PORT (either may be omitted, IPv6 in brackets) or a ws:// URL (default 127.0.0.1 and the profile's port, 2150 for cc42)")
	pf.DurationVar(&f.timeout, "timeout", client.DefaultRequestTimeout, "how long to wait for the connection and the response together")
	pf.StringVar(&f.profile, "profile", api.CC42.Name, "API dialect: "+strings.Join(api.ProfileNames(), ", "))
	pf.StringVar(&f.reqid, "reqid", "", "send this request id instead of a fresh uuid1 (reproducible runs, duplicate-reqid experiments)")
	pf.IntVar(&f.attempts, "connect-attempts", 4, "connection attempts while the controller refuses connections, 250ms apart (zeek-client 0.2's default; mgmt: 10, 1s apart, as zeek-client 1.5)")
	pf.DurationVar(&f.retryDelay, "connect-retry-delay", 0, "delay between connection attempts (default 250ms for cc42, 1s for mgmt)")
	pf.CountVarP(&f.verbose, "verbose", "v", "mgmt: show zeek-client's warnings too")
	pf.BoolVarP(&f.quiet, "quiet", "q", false, "mgmt: print no log lines, not even errors, as zeek-client -q")
	for _, cc := range clientCommands {
		sub := cc.build(f)
		needs := cc.needs
		run := sub.RunE
		sub.RunE = func(cmd *cobra.Command, args []string) error {
			p, err := f.resolveProfile()
			if err != nil {
				return err
			}
			for _, k := range needs {
				if !p.Supports(k) {
					return &exitError{code: 2, err: fmt.Errorf("client %s: not available with profile %s", cmd.Name(), p.Name)}
				}
			}
			return run(cmd, args)
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

func (f *clientFlags) resolveProfile() (*api.Profile, error) {
	p, err := api.Lookup(f.profile)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("client: --profile: %w", err)}
	}
	return p, nil
}

// session is one connection made for one command.
type session struct {
	c       *client.Client
	url     string
	flags   *clientFlags
	profile *api.Profile
	out     io.Writer
	errw    io.Writer
}

func (s *session) reqOpts() []client.RequestOption {
	if s.flags.reqid != "" {
		return []client.RequestOption{client.WithReqid(s.flags.reqid)}
	}
	return nil
}

// connect validates the shared flags and dials the controller, retrying
// while it refuses connections (it may still be starting, as in
// zeek-client's connect loop). ctx bounds everything.
func (f *clientFlags) connect(ctx context.Context, cmd *cobra.Command, observe func(client.Received)) (*session, error) {
	p, err := f.resolveProfile()
	if err != nil {
		return nil, err
	}
	if f.timeout <= 0 {
		return nil, &exitError{code: 2, err: fmt.Errorf("client: --timeout must be positive, got %v", f.timeout)}
	}
	if f.attempts < 1 {
		return nil, &exitError{code: 2, err: fmt.Errorf("client: --connect-attempts must be at least 1, got %d", f.attempts)}
	}
	url, err := client.ControllerURL(f.controller, p.DefaultPort)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("client: --controller: %w", err)}
	}
	s := &session{url: url, flags: f, profile: p, out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr()}
	delay := connectRetryDelay
	if f.retryDelay > 0 {
		delay = f.retryDelay
	}
	for attempt := 1; ; attempt++ {
		s.c, err = client.Dial(ctx, url, client.Options{Profile: p, Observe: observe})
		if err == nil {
			return s, nil
		}
		if attempt >= f.attempts || !errors.Is(err, syscall.ECONNREFUSED) || !waitFor(ctx, delay) {
			break
		}
	}
	fmt.Fprintln(s.errw, err)
	return nil, errReported
}

// waitFor waits d, or less if ctx ends first; it reports whether d passed.
func waitFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// requestFailed reports a request that got no usable response.
func (s *session) requestFailed(err error) error {
	var nr *client.NoResponseError
	if errors.As(err, &nr) && errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(s.errw, "no response received: no %s for reqid %q within %v\n", nr.Event, nr.Reqid, s.flags.timeout)
	} else {
		fmt.Fprintln(s.errw, err)
	}
	return errReported
}

// printJSON writes v as indented JSON; maps come out with sorted keys.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func newGetInstancesCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get-instances",
		Short: "Show the instances of the current configuration",
		Long: `Send get_instances_request and print the instances of the controller's last
accepted configuration as zeek-client 0.2 does: a JSON array sorted by name,
each {"addr", "name", "port"}, the port as "2151/tcp" or null for an agent
that connects to the controller. A failed Result prints "failure: <error>" to
stderr and exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.isMgmt() {
				return runMgmtGetInstances(f, cmd)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			s, err := f.connect(ctx, cmd, nil)
			if err != nil {
				return err
			}
			defer s.c.Close()
			res, err := s.c.GetInstances(ctx, s.reqOpts()...)
			if err != nil {
				return s.requestFailed(err)
			}
			if !res.Success {
				msg := res.Error
				if msg == "" {
					msg = "no reason given"
				}
				fmt.Fprintf(s.errw, "failure: %s\n", msg)
				return errReported
			}
			if res.Data.IsNone() {
				fmt.Fprintln(s.errw, "the result carries no instance data")
				return errReported
			}
			instances, err := s.profile.DecodeInstances(res.Data)
			if err != nil {
				fmt.Fprintf(s.errw, "malformed instance data: %v\n", err)
				return errReported
			}
			return printJSON(s.out, client.InstancesJSON(instances))
		},
	}
}

// resultsJSON renders Results for output.
func resultsJSON(rs []api.Result) []any {
	out := make([]any, len(rs))
	for i, r := range rs {
		out[i] = client.ResultJSON(r)
	}
	return out
}

func newSetConfigCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "set-config FILE|-",
		Short: "Deploy a cluster configuration from an INI file",
		Long: `Read a cluster configuration in zeek-client 0.2's INI format (FILE, or "-" for
standard input), send it in set_configuration_request and print the Results
of the response as a JSON array, one object per Result with its fields
reqid, instance, success, data, error and node (null when unset).

For each failed Result, "instance <instance> failure: <error>" goes to stderr,
as zeek-client prints it, and the exit status is 1. A file that does not parse
is reported as FILE:LINE: problem, with exit status 2, and nothing is sent.

The format:

  [instances]
  instance-1 = 127.0.0.1:2151   (the controller connects to this agent)
  instance-2                    (this agent connects to the controller)

  [worker-01]                   (every other section is one node)
  instance = instance-1
  role = worker                 (or type: manager|logger|proxy|worker|none)
  port = 5001
  interface = eth0              (optional)
  cpu_affinity = 3              (optional)
  state = running               (optional, the default)`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &exitError{code: 2, err: errors.New("client set-config: want exactly one FILE argument, or - for standard input")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := readConfig(cmd, args[0])
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			s, err := f.connect(ctx, cmd, nil)
			if err != nil {
				return err
			}
			defer s.c.Close()
			results, err := s.c.SetConfiguration(ctx, cfg, s.reqOpts()...)
			if err != nil {
				return s.requestFailed(err)
			}
			if err := printJSON(s.out, resultsJSON(results)); err != nil {
				return err
			}
			failed := false
			for _, r := range results {
				if !r.Success {
					msg := ""
					if r.Error != "" {
						msg = ": " + r.Error
					}
					fmt.Fprintf(s.errw, "instance %s failure%s\n", r.Instance, msg)
					failed = true
				}
			}
			if failed {
				return errReported
			}
			return nil
		},
	}
}

// readConfig parses the configuration before any connection is made, so
// a broken file is a usage error and sends nothing.
func readConfig(cmd *cobra.Command, path string) (api.Configuration, error) {
	var r io.Reader
	name := path
	if path == "-" {
		r, name = cmd.InOrStdin(), "<stdin>"
	} else {
		fh, err := os.Open(path)
		if err != nil {
			return api.Configuration{}, &exitError{code: 2, err: fmt.Errorf("client set-config: %w", err)}
		}
		defer fh.Close()
		r = fh
	}
	cfg, err := zeekini.Parse(name, r)
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return api.Configuration{}, &exitError{code: 2, err: errors.New("")}
	}
	return cfg, nil
}

func newTestTimeoutCmd(f *clientFlags) *cobra.Command {
	var withState bool
	cmd := &cobra.Command{
		Use:   "test-timeout [--with-state]",
		Short: "Ask the controller for a request that times out",
		Long: `Send test_timeout_request. With --with-state the controller keeps request
state and answers with a "request timed out" Result once its own request
timeout passes; without it a conforming controller never answers, so this
command then ends with "no response received" and exit status 1.

The Result is printed as a JSON object (reqid, instance, success, data,
error, node), and zeek-client's line "response is <success|failure>, error
string: <error>" goes to stderr. Any response exits 0: a failed Result is
what the test expects.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.isMgmt() {
				return runMgmtTestTimeout(f, cmd, withState)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			s, err := f.connect(ctx, cmd, nil)
			if err != nil {
				return err
			}
			defer s.c.Close()
			res, err := s.c.TestTimeout(ctx, withState, s.reqOpts()...)
			if err != nil {
				return s.requestFailed(err)
			}
			if err := printJSON(s.out, client.ResultJSON(res)); err != nil {
				return err
			}
			outcome, msg := "failure", res.Error
			if res.Success {
				outcome = "success"
			}
			if msg == "" {
				msg = "(none)"
			}
			fmt.Fprintf(s.errw, "response is %s, error string: %s\n", outcome, msg)
			return nil
		},
	}
	cmd.Flags().BoolVar(&withState, "with-state", false, "make the request stateful in the controller, so that it times out and answers")
	return cmd
}

func newMonitorCmd(f *clientFlags) *cobra.Command {
	var count int
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Print every message on the controller topic until interrupted",
		Long: `Subscribe to the controller topic and print every message as one JSON line
with sorted keys, until interrupted (SIGINT, SIGTERM) or --count messages
have been printed:

  {"args":[…],"event":"<name>","topic":"<topic>","type":"event"}   a Zeek event
  {"data":…,"topic":"<topic>","type":"data"}                     other data
  {"error":"<why>","raw":"<frame>","type":"invalid"}             an undecodable frame
  {"code":"<code>","context":"<text>","type":"error"}            an error frame

Arguments are plain JSON: records are arrays of their fields, ports
"2151/tcp", enums their names. --timeout bounds only the connection.
Exit status 1 when the connection is lost. (With --profile mgmt too: where
zeek-client's monitor prints each event's name and argument types, this one
prints the arguments.)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 0 {
				return &exitError{code: 2, err: fmt.Errorf("client monitor: --count must not be negative, got %d", count)}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			p := &monitorPrinter{w: cmd.OutOrStdout(), limit: count, enough: make(chan struct{})}
			dialCtx, cancel := context.WithTimeout(ctx, f.timeout)
			s, err := f.connect(dialCtx, cmd, p.message)
			cancel()
			if err != nil {
				return err
			}
			defer s.c.Close()
			errFrames := s.c.Errors()
			for {
				select {
				case fr, ok := <-errFrames:
					if !ok {
						errFrames = nil // closed at the end; Done follows
						continue
					}
					p.errorFrame(fr)
				case <-p.enough:
					return nil
				case <-ctx.Done():
					return nil
				case <-s.c.Done():
					p.drainErrors(errFrames)
					if p.done() {
						return nil
					}
					fmt.Fprintf(s.errw, "%v: %v\n", client.ErrDisconnected, s.c.Conn().Err())
					return errReported
				}
			}
		},
	}
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many messages (0: until interrupted)")
	return cmd
}

// monitorPrinter writes monitor lines. Data messages arrive on the
// client's reader goroutine, error frames on the command's, hence the lock.
type monitorPrinter struct {
	mu      sync.Mutex
	w       io.Writer
	limit   int
	printed int
	enough  chan struct{}
}

func (p *monitorPrinter) message(r client.Received) {
	line := map[string]any{"topic": r.Topic}
	switch {
	case r.IsEvent:
		args := make([]any, len(r.Event.Args))
		for i, a := range r.Event.Args {
			args[i] = client.JSONValue(a)
		}
		line["type"], line["event"], line["args"] = "event", r.Event.Name, args
	case r.Err != nil && r.Data.IsNone() && len(r.Raw) > 0:
		line = map[string]any{"type": "invalid", "error": r.Err.Error(), "raw": string(r.Raw)}
	default:
		line["type"], line["data"] = "data", client.JSONValue(r.Data)
	}
	p.print(line)
}

func (p *monitorPrinter) errorFrame(f broker.Frame) {
	p.print(map[string]any{"type": "error", "code": f.Code, "context": f.Context})
}

// drainErrors prints the error frames already received.
func (p *monitorPrinter) drainErrors(frames <-chan broker.Frame) {
	for {
		select {
		case fr, ok := <-frames:
			if !ok {
				return
			}
			p.errorFrame(fr)
		default:
			return
		}
	}
}

func (p *monitorPrinter) print(line map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limit > 0 && p.printed >= p.limit {
		return
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(line); err != nil {
		b.Reset()
		enc.Encode(map[string]any{"type": "invalid", "error": err.Error()})
	}
	p.w.Write(b.Bytes())
	p.printed++
	if p.limit > 0 && p.printed == p.limit {
		close(p.enough)
	}
}

func (p *monitorPrinter) done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit > 0 && p.printed >= p.limit
}
