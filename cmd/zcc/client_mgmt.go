package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/zeekini"
)

// `zcc client --profile mgmt`: the commands of zeek-client 1.5 (Zeek 5.2+,
// the Management API), with its INI input, its output byte for byte, its
// log lines and its exit codes, so that scripts written for zeek-client
// work unchanged. The rendering lives in package client (ZeekOutput), the
// wire behaviour in client.ZeekClient.

// zeek-client 1.5's client.peering_attempts and peering_retry_delay_secs.
const (
	mgmtPeeringAttempts = 10
	mgmtRetryDelay      = time.Second
)

// mgmtHostname names the local host for instance-less configurations;
// tests replace it.
var mgmtHostname func() string

// mgmtCommands are the commands only the Management API has; get-instances
// and test-timeout switch to zeek-client 1.5's behaviour by themselves.
var mgmtCommands = []clientCommand{
	{needs: []api.EventKind{api.KindStageConfigurationRequest}, build: newStageConfigCmd},
	{needs: []api.EventKind{api.KindStageConfigurationRequest, api.KindDeployRequest}, build: newDeployConfigCmd},
	{needs: []api.EventKind{api.KindDeployRequest}, build: newDeployCmd},
	{needs: []api.EventKind{api.KindGetConfigurationRequest}, build: newGetConfigCmd},
	{needs: []api.EventKind{api.KindGetNodesRequest}, build: newGetNodesCmd},
	{needs: []api.EventKind{api.KindGetIDValueRequest}, build: newGetIDValueCmd},
	{needs: []api.EventKind{api.KindRestartRequest}, build: newRestartCmd},
}

// isMgmt reports whether the command runs with the Management profile.
func (f *clientFlags) isMgmt() bool { return f.profile == api.Mgmt.Name }

// mgmtRun is one zeek-client-style command: where its output goes and
// how much of the log it shows.
type mgmtRun struct {
	f    *clientFlags
	cmd  *cobra.Command
	out  io.Writer
	errw io.Writer
	ctx  context.Context
}

func (f *clientFlags) mgmt(cmd *cobra.Command) (*mgmtRun, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	return &mgmtRun{f: f, cmd: cmd, out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(), ctx: ctx}, stop
}

// log prints a line as zeek-client's logger does: errors unless -q,
// warnings only with -v.
func (m *mgmtRun) log(level, msg string) {
	if m.f.quiet || (level == "warning" && m.f.verbose < 1) {
		return
	}
	fmt.Fprintf(m.errw, "%s: %s\n", level, msg)
}

// finish prints a rendered result and returns its exit code.
func (m *mgmtRun) finish(o client.ZeekOutput) error {
	for _, l := range o.Log {
		m.log(l.Level, l.Msg)
	}
	io.WriteString(m.out, o.Stdout)
	return exitCode(o.Exit)
}

func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return &exitError{code: code, err: errors.New("")}
}

// failed reports a zeek-client-style failure and exits 1.
func (m *mgmtRun) failed(err error) error {
	var ze *client.ZeekClientError
	if errors.As(err, &ze) {
		m.log("error", ze.Msg)
	} else {
		m.log("error", err.Error())
	}
	return exitCode(1)
}

// dial connects as zeek-client does: the controller's address from
// --controller (default 127.0.0.1:2149), 10 attempts 1 s apart unless
// --connect-attempts or --connect-retry-delay say otherwise.
func (m *mgmtRun) dial() (*client.ZeekClient, error) {
	f := m.f
	if f.timeout <= 0 {
		return nil, &exitError{code: 2, err: fmt.Errorf("client: --timeout must be positive, got %v", f.timeout)}
	}
	url, err := client.ControllerURL(f.controller, api.Mgmt.DefaultPort)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("client: --controller: %w", err)}
	}
	attempts := mgmtPeeringAttempts
	if m.cmd.Flags().Changed("connect-attempts") {
		if f.attempts < 1 {
			return nil, &exitError{code: 2, err: fmt.Errorf("client: --connect-attempts must be at least 1, got %d", f.attempts)}
		}
		attempts = f.attempts
	}
	delay := mgmtRetryDelay
	if f.retryDelay > 0 {
		delay = f.retryDelay
	}
	z, err := client.DialZeekClient(m.ctx, url, client.ZeekClientOptions{
		PeeringAttempts: attempts,
		RetryDelay:      delay,
		RequestTimeout:  f.timeout,
		Warn:            func(msg string) { m.log("warning", msg) },
	})
	if err != nil {
		return nil, m.failed(err)
	}
	return z, nil
}

func (m *mgmtRun) reqid() string {
	if m.f.reqid != "" {
		return m.f.reqid
	}
	return client.NewReqid()
}

// transact sends one request on z and returns the typed response, or the
// error to return from the command.
func transact[R api.Message](m *mgmtRun, z *client.ZeekClient, req api.Message) (R, client.ZeekResponse, error) {
	var zero R
	resp, err := z.Transact(m.ctx, req)
	if err != nil {
		return zero, resp, m.failed(err)
	}
	r, ok := resp.Msg.(R)
	if !ok {
		return zero, resp, m.failed(fmt.Errorf("unexpected response %T", resp.Msg))
	}
	return r, resp, nil
}

// simple runs a command that sends one request and renders its response.
func simple[R api.Message](f *clientFlags, cmd *cobra.Command, req func(reqid string) api.Message, render func(R, client.ZeekResponse) client.ZeekOutput) error {
	m, stop := f.mgmt(cmd)
	defer stop()
	z, err := m.dial()
	if err != nil {
		return err
	}
	defer z.Close()
	r, resp, err := transact[R](m, z, req(m.reqid()))
	if err != nil {
		return err
	}
	return m.finish(render(r, resp))
}

func runMgmtGetInstances(f *clientFlags, cmd *cobra.Command) error {
	return simple(f, cmd, func(r string) api.Message { return api.GetInstancesRequest{Reqid: r} },
		func(r api.GetInstancesResponse, resp client.ZeekResponse) client.ZeekOutput {
			return client.ZeekGetInstances(r, resp.Event)
		})
}

func runMgmtTestTimeout(f *clientFlags, cmd *cobra.Command, withState bool) error {
	return simple(f, cmd, func(r string) api.Message { return api.TestTimeoutRequest{Reqid: r, WithState: withState} },
		func(r api.TestTimeoutResponse, _ client.ZeekResponse) client.ZeekOutput {
			return client.ZeekTestTimeout(r.Result)
		})
}

// readConfig reads and checks an INI file as zeek-client's stage-config
// does before connecting; an error ends the command (its message already
// printed).
func (m *mgmtRun) readConfig(path string) (api.Configuration, error) {
	if path == "" {
		m.log("error", "please provide a cluster configuration file.")
		return api.Configuration{}, exitCode(1)
	}
	var r io.Reader
	name := path
	if path == "-" {
		r, name = m.cmd.InOrStdin(), "<stdin>"
	} else {
		if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
			m.log("error", "please provide a cluster configuration file.")
			return api.Configuration{}, exitCode(1)
		}
		fh, err := os.Open(path)
		if err != nil {
			m.log("error", err.Error())
			return api.Configuration{}, exitCode(1)
		}
		defer fh.Close()
		r = fh
	}
	cfg, err := zeekini.ParseOptions(name, r, zeekini.Options{
		Dialect:  zeekini.DialectMgmt,
		Hostname: mgmtHostname,
		Warn:     func(msg string) { m.log("warning", msg) },
	})
	if err != nil {
		var list zeekini.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				if e.ZeekClient {
					m.log("error", e.Msg)
				} else {
					m.log("error", e.Error())
				}
			}
		} else {
			m.log("error", err.Error())
		}
		m.log("error", "configuration has errors, not sending")
		return api.Configuration{}, exitCode(1)
	}
	return cfg, nil
}

const iniHelp = `The INI format is zeek-client 1.5's:

  [instances]                   (optional)
  instance-1                    (this agent connects to the controller)
  instance-2 = 10.0.0.2:2151    (the controller connects to this agent)

  [manager]                     (every other section is one node)
  instance = instance-1         (in every node or in none: then
                                 "agent-<hostname>")
  role = manager                (or type: manager|logger|proxy|worker)
  port = 5000                   (optional: the controller assigns ports)
  metrics_port = 9000           (optional)
  interface = eth0
  cpu_affinity = 2
  scripts = local.zeek "site/my script.zeek"
  env = LANG=C GREETING="hello world"

A node's state, options and unknown keys are ignored (with a warning under
-v). A file zeek-client would refuse is refused with its message and exit
status 1, and nothing is sent.`

func fileArg(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return &exitError{code: 2, err: fmt.Errorf("client %s: want exactly one FILE argument, or - for standard input", name)}
		}
		return nil
	}
}

func newStageConfigCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "stage-config FILE|-",
		Short: "Upload a cluster configuration for later deployment (mgmt)",
		Long: `Read a cluster configuration (FILE, or "-" for standard input), send it in
stage_configuration_request and print, as zeek-client does:

  {"errors": [<error>, …], "results": {"id": "<configuration id>"}}

Exit status 1 when the controller reports a problem.

` + iniHelp,
		Args: fileArg("stage-config"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, stop := f.mgmt(cmd)
			defer stop()
			cfg, err := m.readConfig(args[0])
			if err != nil {
				return err
			}
			z, err := m.dial()
			if err != nil {
				return err
			}
			defer z.Close()
			r, _, err := transact[api.StageConfigurationResponse](m, z, api.StageConfigurationRequest{Reqid: m.reqid(), Config: cfg})
			if err != nil {
				return err
			}
			o, _ := client.ZeekStageConfig(r.Results)
			return m.finish(o)
		},
	}
}

func newDeployConfigCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "deploy-config FILE|-",
		Short: "Upload a cluster configuration and deploy it (mgmt)",
		Long: `Stage a configuration as stage-config does and, if the controller accepts it,
deploy it on the same connection as deploy does, printing deploy's output
(or stage-config's, when staging failed).

` + iniHelp,
		Args: fileArg("deploy-config"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, stop := f.mgmt(cmd)
			defer stop()
			cfg, err := m.readConfig(args[0])
			if err != nil {
				return err
			}
			z, err := m.dial()
			if err != nil {
				return err
			}
			defer z.Close()
			staged, _, err := transact[api.StageConfigurationResponse](m, z, api.StageConfigurationRequest{Reqid: m.reqid(), Config: cfg})
			if err != nil {
				return err
			}
			if o, ok := client.ZeekStageConfig(staged.Results); !ok {
				return m.finish(o)
			}
			deployed, _, err := transact[api.DeployResponse](m, z, api.DeployRequest{Reqid: client.NewReqid()})
			if err != nil {
				return err
			}
			return m.finish(client.ZeekDeploy(deployed.Results))
		},
	}
}

func newDeployCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "deploy",
		Short: "Deploy the staged cluster configuration (mgmt)",
		Long: `Send deploy_request and print, as zeek-client does:

  {"errors": [<error>, …],
   "results": {"id": "<configuration id>",
               "nodes": {"<node>": {"instance": …, "success": true|false,
                                    "stdout": …, "stderr": …}}}}

stdout and stderr appear for failed nodes whose outputs the agent sent.
Exit status 1 when any Result failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return simple(f, cmd, func(r string) api.Message { return api.DeployRequest{Reqid: r} },
				func(r api.DeployResponse, _ client.ZeekResponse) client.ZeekOutput {
					return client.ZeekDeploy(r.Results)
				})
		},
	}
}

func newGetConfigCmd(f *clientFlags) *cobra.Command {
	var deployed, staged, asJSON bool
	var filename string
	cmd := &cobra.Command{
		Use:   "get-config [--deployed|--staged] [--as-json] [-f FILE]",
		Short: "Show the staged or deployed cluster configuration (mgmt)",
		Long: `Send get_configuration_request and print the configuration as zeek-client
does: in its INI format (which stage-config reads back), or with --as-json as

  {"id": …, "instances": [{"name", "host"?, "port"?}],
   "nodes": [{"name", "instance", "role", "port", "scripts", "options",
              "interface", "cpu_affinity", "env", "metrics_port"}]}

The staged configuration is the default. A failure prints "error: <error>"
and exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if deployed && staged {
				return &exitError{code: 2, err: errors.New("client get-config: --deployed and --staged exclude each other")}
			}
			m, stop := f.mgmt(cmd)
			defer stop()
			z, err := m.dial()
			if err != nil {
				return err
			}
			defer z.Close()
			r, resp, err := transact[api.GetConfigurationResponse](m, z, api.GetConfigurationRequest{Reqid: m.reqid(), Deployed: deployed})
			if err != nil {
				return err
			}
			o := client.ZeekGetConfig(r, resp.Event, asJSON)
			if o.Exit == 0 && filename != "" && filename != "-" {
				if err := os.WriteFile(filename, []byte(o.Stdout), 0o644); err != nil {
					m.log("error", err.Error())
					return exitCode(1)
				}
				o.Stdout = ""
			}
			return m.finish(o)
		},
	}
	cmd.Flags().BoolVar(&deployed, "deployed", false, "show the deployed configuration")
	cmd.Flags().BoolVar(&staged, "staged", false, "show the staged configuration (the default)")
	cmd.Flags().BoolVar(&asJSON, "as-json", false, "print JSON instead of the INI format")
	cmd.Flags().StringVarP(&filename, "filename", "f", "-", "write the configuration to FILE instead of standard output")
	return cmd
}

func newGetNodesCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get-nodes",
		Short: "Show the Zeek processes of every connected instance (mgmt)",
		Long: `Send get_nodes_request and print, as zeek-client does:

  {"errors": [{"source": <instance>|null, "error": …}],
   "results": {"<instance>": {"<node>": {"state": …, "mgmt_role": …|null,
               "cluster_role": …|null, "pid"?, "port"?, "metrics_port"?}}}}

Exit status 1 when there are errors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return simple(f, cmd, func(r string) api.Message { return api.GetNodesRequest{Reqid: r} },
				func(r api.GetNodesResponse, _ client.ZeekResponse) client.ZeekOutput {
					return client.ZeekGetNodes(r.Results)
				})
		},
	}
}

func newGetIDValueCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get-id-value IDENTIFIER [NODES…]",
		Short: "Show the value of a script identifier on cluster nodes (mgmt)",
		Long: `Send get_id_value_request for IDENTIFIER on NODES (all nodes when none are
given) and print, as zeek-client does:

  {"errors": [{"source": <node>|null, "error": …}],
   "results": {"<node>": <the value as JSON>}}

Exit status 1 when there are errors.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return &exitError{code: 2, err: errors.New("client get-id-value: want an IDENTIFIER, then optionally node names")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return simple(f, cmd, func(r string) api.Message {
				return api.GetIDValueRequest{Reqid: r, ID: args[0], Nodes: args[1:]}
			}, func(r api.GetIDValueResponse, _ client.ZeekResponse) client.ZeekOutput {
				return client.ZeekGetIDValue(r.Results)
			})
		},
	}
}

func newRestartCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "restart [NODES…]",
		Short: "Restart cluster nodes (mgmt)",
		Long: `Send restart_request for NODES (all nodes when none are given) and print, as
zeek-client does:

  {"errors": [{"source": <node>|null, "error": …}],
   "results": {"<node>": true|false}}

Exit status 1 when there are errors.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return simple(f, cmd, func(r string) api.Message { return api.RestartRequest{Reqid: r, Nodes: args} },
				func(r api.RestartResponse, _ client.ZeekResponse) client.ZeekOutput {
					return client.ZeekRestart(r.Results)
				})
		},
	}
}
