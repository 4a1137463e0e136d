package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/controller"
)

func init() { subcommands = append(subcommands, newControllerCmd) }

// controllerSettings are the `zcc controller` options after flags and
// environment are merged.
type controllerSettings struct {
	name, addr, port string
	requestTimeout   time.Duration
	sweepInterval    time.Duration
	connectRetry     time.Duration
	mode             string
	logFormat        string
	logLevel         string
	profile          string
	// Management profile only.
	brokerPort       string
	stateDir         string
	autoBrokerPorts  bool
	autoMetricsPorts bool
	pingInterval     time.Duration
}

func newControllerCmd() *cobra.Command {
	cmd, _ := controllerCommand()
	return cmd
}

// controllerCommand returns the command and the settings its flags fill.
func controllerCommand() (*cobra.Command, *controllerSettings) {
	s := &controllerSettings{}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the reference cluster controller (cc42: Zeek 4.2; mgmt: Zeek 5.2+ Management API)",
		Long: `Run zcc's reference controller until SIGINT or SIGTERM.

It serves Broker's WebSocket JSON transport at ws://ADDR:PORT/v1/messages/json
and speaks the --profile's API: cc42 (ClusterController API v1 of Zeek 4.2,
the default) or mgmt (the Management API of Zeek 5.2 and later, which the real
zeek-client speaks). As in Zeek, the environment sets the defaults and flags
override them:

  ZEEK_CONTROLLER_NAME            node name in the log (default controller-<hostname>)
  ZEEK_DEFAULT_LISTEN_ADDRESS     listen address when none below is set (else 127.0.0.1)
  ZCC_REQUEST_TIMEOUT             request timeout, e.g. 10s (Zeek: 10 s)
  ZCC_SWEEP_INTERVAL              expiry sweep interval (Zeek's table_expire_interval: 10s for cc42, 2s for mgmt)
 cc42:
  ZEEK_CONTROLLER_ADDR            listen address
  ZEEK_CONTROLLER_PORT            listen port, "2150/tcp" as Zeek writes it or a bare number (default 2150)
 mgmt:
  ZEEK_CONTROLLER_WEBSOCKET_ADDR  listen address
  ZEEK_CONTROLLER_WEBSOCKET_PORT  listen port, "2149/tcp" or a bare number (default 2149)
  ZEEK_CONTROLLER_PORT            the controller's Broker port, which nodes may not use
                                  (default 2150/tcp; zcc does not listen on it)
  ZEEK_MANAGEMENT_STATE_DIR       keep configurations here across restarts (--state-dir)

Zeek itself only accepts "N/tcp" ports; zcc also takes a bare number.

--mode zeek42 reproduces Zeek exactly, quirks included (Zeek 4.2 for cc42,
Zeek 8.1.2 for mgmt); --mode fixed repairs them (see the controller README's
quirk tables).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runController(cmd, s)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&s.name, "name", "", "node name in the log (env ZEEK_CONTROLLER_NAME)")
	fl.StringVar(&s.addr, "addr", "", "listen address (env ZEEK_CONTROLLER_ADDR, ZEEK_DEFAULT_LISTEN_ADDRESS; default 127.0.0.1)")
	fl.StringVar(&s.port, "port", "", `listen port, e.g. "2150/tcp" or "2150" (env ZEEK_CONTROLLER_PORT, mgmt: ZEEK_CONTROLLER_WEBSOCKET_PORT; default 2150, mgmt 2149)`)
	fl.DurationVar(&s.requestTimeout, "request-timeout", 0, "request timeout (env ZCC_REQUEST_TIMEOUT; default 10s)")
	fl.DurationVar(&s.sweepInterval, "sweep-interval", 0, "how often expired requests are swept (env ZCC_SWEEP_INTERVAL; default 10s, mgmt 2s)")
	fl.DurationVar(&s.connectRetry, "connect-retry", controller.DefaultConnectRetry, "retry interval for dialling listening agents")
	fl.StringVar(&s.mode, "mode", "zeek42", "zeek42 (Zeek 4.2, quirks included) or fixed")
	fl.StringVar(&s.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&s.logLevel, "log-level", "info", "lowest level logged: debug, info, warning or error")
	fl.StringVar(&s.profile, "profile", api.CC42.Name, "API profile: cc42 or mgmt")
	fl.StringVar(&s.brokerPort, "broker-port", "", `mgmt: the controller's Broker port that nodes may not use (env ZEEK_CONTROLLER_PORT; default 2150/tcp)`)
	fl.StringVar(&s.stateDir, "state-dir", "", "mgmt: keep the staged and deployed configurations in this directory and redeploy at start (env ZEEK_MANAGEMENT_STATE_DIR)")
	fl.BoolVar(&s.autoBrokerPorts, "auto-assign-broker-ports", true, "mgmt: give managers, loggers and proxies without a port one from 2200 (Zeek's auto_assign_broker_ports)")
	fl.BoolVar(&s.autoMetricsPorts, "auto-assign-metrics-ports", true, "mgmt: give nodes without a metrics port one from 9000 per host (Zeek's auto_assign_metrics_ports)")
	fl.DurationVar(&s.pingInterval, "ping-interval", 0, "WebSocket ping interval; a client that misses a pong is closed 1011 (default: mgmt 5s as Zeek 8.1, cc42 none; 0 disables)")
	return cmd, s
}

func runController(cmd *cobra.Command, s *controllerSettings) error {
	opts, err := controllerOptions(cmd, s, os.LookupEnv)
	if err != nil {
		return err
	}
	logger, err := newControllerLogger(cmd.ErrOrStderr(), s.logFormat, s.logLevel)
	if err != nil {
		return err
	}
	opts.Logger = logger
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := controller.Start(ctx, opts)
	if err != nil {
		return err
	}
	<-c.Done()
	if err := c.Close(); err != nil {
		return fmt.Errorf("controller shutdown: %w", err)
	}
	logger.Info("controller stopped", "role", "CONTROLLER", "node", c.Name())
	return nil
}

// controllerOptions merges flags (when set) over the environment over the
// defaults.
func controllerOptions(cmd *cobra.Command, s *controllerSettings, lookup func(string) (string, bool)) (controller.Options, error) {
	var opts controller.Options
	fl := cmd.Flags()
	pick := func(flag, flagValue string, envs ...string) (string, string) {
		if fl.Changed(flag) {
			return flagValue, "--" + flag
		}
		for _, e := range envs {
			if v, ok := lookup(e); ok && v != "" {
				return v, e
			}
		}
		return "", ""
	}

	var err error
	if opts.Profile, err = api.Lookup(s.profile); err != nil {
		return opts, fmt.Errorf("--profile: %w", err)
	}
	mgmt := opts.Profile == api.Mgmt
	addrEnv, portEnv := "ZEEK_CONTROLLER_ADDR", "ZEEK_CONTROLLER_PORT"
	if mgmt {
		addrEnv, portEnv = "ZEEK_CONTROLLER_WEBSOCKET_ADDR", "ZEEK_CONTROLLER_WEBSOCKET_PORT"
	}

	opts.Name, _ = pick("name", s.name, "ZEEK_CONTROLLER_NAME")
	addr, _ := pick("addr", s.addr, addrEnv, "ZEEK_DEFAULT_LISTEN_ADDRESS")
	if addr == "" {
		addr = "127.0.0.1"
	}
	port := opts.Profile.DefaultPort
	if v, from := pick("port", s.port, portEnv); v != "" {
		p, err := parseControllerPort(v)
		if err != nil {
			return opts, fmt.Errorf("%s: %w", from, err)
		}
		port = p
	}
	opts.ListenAddr = net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(int(port)))

	if err := mgmtControllerOptions(&opts, s, fl.Changed, pick); err != nil {
		return opts, err
	}

	if opts.RequestTimeout, err = controllerDuration(fl.Changed("request-timeout"), s.requestTimeout, "--request-timeout", "ZCC_REQUEST_TIMEOUT", lookup); err != nil {
		return opts, err
	}
	if opts.SweepInterval, err = controllerDuration(fl.Changed("sweep-interval"), s.sweepInterval, "--sweep-interval", "ZCC_SWEEP_INTERVAL", lookup); err != nil {
		return opts, err
	}
	if s.connectRetry <= 0 {
		return opts, fmt.Errorf("--connect-retry %v: must be positive", s.connectRetry)
	}
	opts.ConnectRetry = s.connectRetry
	if opts.Mode, err = controller.ParseMode(s.mode); err != nil {
		return opts, fmt.Errorf("--mode: %w", err)
	}
	return opts, nil
}

// mgmtControllerOptions applies the Management-only settings, and rejects
// them under another profile.
func mgmtControllerOptions(opts *controller.Options, s *controllerSettings, changed func(string) bool, pick func(flag, flagValue string, envs ...string) (string, string)) error {
	if opts.Profile != api.Mgmt {
		for _, f := range []string{"broker-port", "state-dir", "auto-assign-broker-ports", "auto-assign-metrics-ports"} {
			if changed(f) {
				return fmt.Errorf("--%s: only the mgmt profile has it (--profile mgmt)", f)
			}
		}
		if changed("ping-interval") {
			opts.Hub.PingInterval = s.pingInterval
		}
		return nil
	}
	opts.Mgmt.BrokerPort = broker.TCPPort(controller.DefaultBrokerPort)
	if v, from := pick("broker-port", s.brokerPort, "ZEEK_CONTROLLER_PORT"); v != "" {
		p, err := parseControllerPort(v)
		if err != nil {
			return fmt.Errorf("%s: %w", from, err)
		}
		opts.Mgmt.BrokerPort = broker.TCPPort(p)
	}
	opts.StateDir, _ = pick("state-dir", s.stateDir, "ZEEK_MANAGEMENT_STATE_DIR")
	opts.Mgmt.NoBrokerPortAutoAssign = !s.autoBrokerPorts
	opts.Mgmt.NoMetricsPortAutoAssign = !s.autoMetricsPorts
	opts.Hub.PingInterval = mgmtPingInterval
	if changed("ping-interval") {
		opts.Hub.PingInterval = s.pingInterval
	}
	if opts.Hub.PingInterval < 0 {
		return fmt.Errorf("--ping-interval %v: must not be negative", opts.Hub.PingInterval)
	}
	return nil
}

// mgmtPingInterval is Zeek 8.1's WebSocket ping interval
// (Cluster::default_websocket_ping_interval).
const mgmtPingInterval = 5 * time.Second

func controllerDuration(flagSet bool, flagValue time.Duration, flag, env string, lookup func(string) (string, bool)) (time.Duration, error) {
	if flagSet {
		if flagValue <= 0 {
			return 0, fmt.Errorf("%s %v: must be positive", flag, flagValue)
		}
		return flagValue, nil
	}
	v, ok := lookup(env)
	if !ok || v == "" {
		return 0, nil // the controller's default
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a duration such as 10s or 500ms: %w", env, v, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s=%q: must be positive", env, v)
	}
	return d, nil
}

// parseControllerPort accepts a port as Zeek's to_port writes it ("2150/tcp")
// or a bare number. The controller listens on TCP, so other protocols are
// an error.
func parseControllerPort(s string) (uint16, error) {
	num, proto, hasProto := strings.Cut(strings.TrimSpace(s), "/")
	if hasProto && proto != "tcp" {
		return 0, fmt.Errorf("port %q: the controller listens on TCP; want N/tcp or N", s)
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q: want a number from 0 to 65535, optionally followed by /tcp (e.g. 2150/tcp)", s)
	}
	return uint16(n), nil
}

func newControllerLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "info":
		lv = slog.LevelInfo
	case "warning", "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("--log-level %q: want debug, info, warning or error", level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
