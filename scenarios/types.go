package scenarios

import (
	"reflect"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/fakeagent"
)

// The format. Field tags drive both the loader and the JSON Schema:
// yaml names the key, required marks keys that must be present, doc is the
// description editors show. Comments are for Go readers.

// Scenario is one scenario file: who takes part, how each agent behaves,
// and the steps to run in order.
type Scenario struct {
	Name        string    `yaml:"name" required:"true" doc:"Unique name (lower case, digits, -): the spec is called \"scenario <name>\" and labelled scenario:<name>."`
	Description string    `yaml:"description" required:"true" doc:"What the case is and why someone would hit it; the first line appears in listings."`
	Profile     string    `yaml:"profile" required:"true" enum:"profiles" doc:"API dialect the scenario speaks: cc42 (ClusterController API of Zeek 4.2) or mgmt (Management API, once scenarios support its requests)."`
	Pair        string    `yaml:"pair" doc:"Request/response pair the report groups the scenario under; default: the request of the first send step."`
	Labels      []string  `yaml:"labels" doc:"Extra Ginkgo labels, e.g. fault:agent-fails. pair:, behavior:, profile: and scenario labels are added by the runner."`
	Covers      []string  `yaml:"covers" required:"true" doc:"Behaviour catalogue IDs the scenario checks (suites/catalog/behaviors-<profile>.md)."`
	Quirks      QuirkMode `yaml:"quirks" doc:"Quirk mode the expectations assume: zeek42, fixed or any (default). Under the other mode the scenario is skipped with the reason."`
	Fresh       bool      `yaml:"fresh" doc:"Needs a controller of its own (it starts from no configuration, or leaves the controller broken); skipped on shared targets such as external."`
	Timeouts    Timeouts  `yaml:"timeouts" doc:"Default bounds of this scenario's waits."`
	Agents      []Agent   `yaml:"agents" doc:"The fake agents. Each is started before the first step unless late."`
	Steps       []Step    `yaml:"steps" required:"true" doc:"What happens, in order."`

	file       string                    // the name errors and failures use
	pos        map[string]Pos            // value positions by path ("steps[2].within")
	keyPos     map[string]Pos            // key positions by path
	iniConfigs map[int]api.Configuration // config_file configurations by step index
	members    map[string]*Agent         // every agent (a group's members each) by short name
	groups     map[string][]string       // agent or group name → agent names
	order      []string                  // agent names in declaration order
}

// QuirkMode is the quirk mode a scenario expects.
type QuirkMode string

// Quirk modes of a scenario.
const (
	QuirksAny    QuirkMode = "any"
	QuirksZeek42 QuirkMode = "zeek42"
	QuirksFixed  QuirkMode = "fixed"
)

// Timeouts are a scenario's default wait bounds.
type Timeouts struct {
	Response Duration `yaml:"response" doc:"How long an expect step waits for what must come (a response, an event at an agent); default response_wait."`
	Hello    Duration `yaml:"hello" doc:"How long to wait for started agents to say hello; default hello."`
	Quiet    Duration `yaml:"quiet" doc:"How long to watch to conclude that something does not happen (expect_no_response, exact counts); default consistency."`
	// ControllerAtLeast is absolute: it sets the timing the other
	// durations are relative to.
	ControllerAtLeast Duration `yaml:"controller_at_least" doc:"The scenario needs a controller request timeout of at least this (an absolute duration), e.g. to welcome and configure a hundred agents in time. The in-process controller is given it; on targets with a shorter timeout the scenario is skipped with the reason."`
}

// Agent declares one fake agent, or a group of count agents named by a
// pattern. The fields mirror fakeagent.Options.
type Agent struct {
	Name          string                `yaml:"name" doc:"Short name of the agent, or of the group when count is given. The runner makes it unique per run (the same mapping applies wherever the scenario names an instance)."`
	Count         int                   `yaml:"count" doc:"Number of agents in a group (1-1000); their names come from pattern."`
	Pattern       string                `yaml:"pattern" doc:"fmt pattern with one integer verb naming the group's agents from 1, e.g. w%03d; default <name>%0Nd with N the digits of count."`
	Late          bool                  `yaml:"late" doc:"Not started before the first step: a start step starts it."`
	Connect       fakeagent.ConnectMode `yaml:"connect" doc:"dial (the agent connects to the controller, the default) or listen (the controller connects to the agent; configurations carry its port)."`
	APIVersion    *uint64               `yaml:"api_version" doc:"api_version announced in the hello; default the profile's (1)."`
	Hello         fakeagent.HelloPolicy `yaml:"hello" doc:"once per connection (the cc42 default, like Zeek 4.2), repeat every hello_interval until welcomed (the mgmt default, as a WebSocket agent must with Zeek 5.2+), or none."`
	HelloInterval Duration              `yaml:"hello_interval" doc:"Interval of hello: repeat; default 1s."`
	Backoff       Backoff               `yaml:"backoff" doc:"Reconnect delays; default 20ms doubling to 500ms."`
	NoReconnect   bool                  `yaml:"no_reconnect" doc:"Stop for good when the first connection ends instead of reconnecting."`
	Seed          *uint64               `yaml:"seed" doc:"Seed of probabilistic rules (with the agent's name); default the run's seed."`
	ExactTopic    bool                  `yaml:"exact_topic" doc:"Ignore requests published on another agent's topic that this agent's subscription prefix also matches."`
	Behaviour     Behaviour             `yaml:"behaviour" doc:"What the agent does with each request it receives; requests without a rule get a real agent's answer."`
}

// Backoff mirrors fakeagent.Backoff.
type Backoff struct {
	Initial Duration `yaml:"initial" doc:"First reconnect delay."`
	Max     Duration `yaml:"max" doc:"Largest reconnect delay."`
}

// Behaviour mirrors fakeagent.Behaviour.
type Behaviour struct {
	On map[string]Rule `yaml:"on" doc:"Rule per request, keyed by its short name (agent_welcome_request, set_configuration_request, agent_standby_request, …) or * for every request without its own rule."`
}

// Rule mirrors fakeagent.Rule, with durations that may be relative to the
// target's timing.
type Rule struct {
	Action      fakeagent.Action `yaml:"action" doc:"What to do: reply (default), fail, fail_no_node, never, twice, stale_reqid, unknown_reqid, other_instance, malformed, wrong_type, close_before, close_after, reset_before, reset_after."`
	Delay       Duration         `yaml:"delay" doc:"Postpone whatever the action sends (or the close/reset)."`
	Node        string           `yaml:"node" doc:"fail: the failing node; default the agent's first node in the configuration."`
	Error       string           `yaml:"error" doc:"fail, fail_no_node: the error text."`
	Stdout      string           `yaml:"stdout" doc:"fail (mgmt deploy_request): the failing node's standard output, sent as its NodeOutputs."`
	Stderr      string           `yaml:"stderr" doc:"fail (mgmt deploy_request): the failing node's standard error, sent as its NodeOutputs."`
	Instance    string           `yaml:"instance" doc:"other_instance: the instance the answer claims to come from (mapped like every instance name); default <agent>-other."`
	Count       int              `yaml:"count" doc:"As a sequence step: how many messages this step handles (0, only on the last step: all remaining)."`
	Sequence    []Rule           `yaml:"sequence" doc:"Steps taken one after the other, each for count messages; afterwards the agent replies normally."`
	Probability float64          `yaml:"probability" doc:"Take this rule with this probability (0, 1], drawn from the agent's seeded random source; otherwise take otherwise (default reply)."`
	Otherwise   *Rule            `yaml:"otherwise" doc:"The rule taken when probability says no."`
}

// Step is one step: exactly one of its fields is set, chosen by the
// step's kind key (send, expect_response, kill, …).
type Step struct {
	Send             *SendStep
	ExpectResponse   *ExpectResponseStep
	ExpectNoResponse *ExpectNoResponseStep
	ExpectReceived   *ExpectReceivedStep
	ExpectSent       *ExpectSentStep
	Kill             *KillStep
	Stop             *StopStep
	Restart          *RestartStep
	Start            *StartStep
	Pause            *PauseStep
	SayHello         *SayHelloStep
	SetBehaviour     *SetBehaviourStep
}

// SendStep sends a request to the controller.
type SendStep struct {
	Send       string          `yaml:"send" required:"true" enum:"requests" doc:"The request: get_instances and test_timeout (both profiles); set_configuration (cc42); stage_configuration, get_configuration, deploy, get_nodes, get_id_value and restart (mgmt)."`
	As         string          `yaml:"as" doc:"Label later steps use to name this request; default the request's name (so a second request of the same kind needs one)."`
	Client     string          `yaml:"client" doc:"Which client sends it (each name is its own connection); default main."`
	ReqidOf    string          `yaml:"reqid_of" doc:"Reuse the reqid of this earlier request instead of a fresh one."`
	Config     *ConfigSpec     `yaml:"config" doc:"set_configuration, stage_configuration: the configuration, inline."`
	ConfigFile string          `yaml:"config_file" doc:"set_configuration, stage_configuration: a zeek-client INI file, relative to the scenario file."`
	WithState  bool            `yaml:"with_state" doc:"test_timeout: create request state (the controller then answers with a timeout)."`
	Deployed   bool            `yaml:"deployed" doc:"get_configuration: ask for the deployed configuration instead of the staged one."`
	ID         string          `yaml:"id" doc:"get_id_value: the script identifier whose value the nodes report, e.g. Cluster::node."`
	Nodes      []string        `yaml:"nodes" doc:"get_id_value, restart: the cluster nodes to ask; default all of them."`
	Expect     *ResponseExpect `yaml:"expect" doc:"Wait for the response and check it (the same as a following expect_response step)."`
}

// ConfigSpec is an inline configuration.
type ConfigSpec struct {
	ID                    string        `yaml:"id" doc:"Configuration id; default a fresh one."`
	Instances             []InstanceRef `yaml:"instances" required:"true" doc:"Instances: agent or group names, or {name, host, port} for an instance with explicit connectivity (or no agent at all)."`
	Nodes                 []NodeSpec    `yaml:"nodes" doc:"Cluster nodes; default one worker per instance, named <instance>-worker (cc42: with ports from 47000; mgmt: without, as workers listen on none)."`
	AllowUnknownInstances bool          `yaml:"allow_unknown_instances" doc:"Let nodes name instances the configuration does not list (to check that the controller does not validate)."`
}

// InstanceRef names an instance: an agent (or group) by its short name,
// or an instance with explicit connectivity.
type InstanceRef struct {
	Name string `yaml:"name" required:"true" doc:"Instance name (an agent's short name, or any other name)."`
	Host string `yaml:"host" doc:"Address; default 0.0.0.0 (the agent connects), or 127.0.0.1 for a listening agent."`
	Port *int   `yaml:"port" doc:"Listen port; default none (the agent connects), or where a listening agent listens."`
	bare bool   // written as a plain name
	pos  Pos    // where it was written
}

// NodeSpec is one cluster node of an inline configuration.
type NodeSpec struct {
	Name        string            `yaml:"name" required:"true" doc:"Node name."`
	Instance    string            `yaml:"instance" required:"true" doc:"Instance the node runs on."`
	Role        string            `yaml:"role" enum:"roles" doc:"manager, logger, proxy, worker (default) or none."`
	Port        int               `yaml:"port" doc:"Node port; required by cc42, optional in mgmt (the controller assigns manager, logger and proxy ports from 2200)."`
	State       string            `yaml:"state" enum:"states" doc:"running (default), stopped, failed, crashed or unknown."`
	Interface   string            `yaml:"interface" doc:"Capture interface."`
	CPUAffinity *int64            `yaml:"cpu_affinity" doc:"CPU to pin the node to."`
	Scripts     []string          `yaml:"scripts" doc:"Scripts to load."`
	Env         map[string]string `yaml:"env" doc:"Environment variables."`
	Options     map[string]string `yaml:"options" doc:"Script options, name: value."`
}

// ResponseExpect says what a response must look like. Fields left out
// are not checked, except that every Result must carry the request's
// reqid and that success: true implies an empty error unless error or
// error_matches says otherwise.
type ResponseExpect struct {
	Within       Duration       `yaml:"within" doc:"The response must arrive within this long after the request was sent; default timeouts.response."`
	NotBefore    Duration       `yaml:"not_before" doc:"The response must not arrive earlier than this after the request was sent."`
	TimedOut     bool           `yaml:"timed_out" doc:"The response is the controller's timeout: exactly one Result (reqid, \"\", false, none, \"request timed out\", none)."`
	Success      *bool          `yaml:"success" doc:"Every Result has this success."`
	Error        *string        `yaml:"error" doc:"Every Result has exactly this error text. {reqid}, {reqid:<label>} and {agent:<name>} stand for the run's actual values."`
	ErrorMatches string         `yaml:"error_matches" doc:"Every Result's error matches this regular expression (placeholders as in error)."`
	Count        *int           `yaml:"count" doc:"Number of Results."`
	Results      []ResultExpect `yaml:"results" doc:"The Results, in any order (unless in_order): each entry matches exactly one Result, and there are no others."`
	InOrder      bool           `yaml:"in_order" doc:"results: the Results come in exactly the listed order (mgmt: stage errors sorted by text, the config id last in a deploy)."`
	FromAgents   bool           `yaml:"from_agents" doc:"set_configuration: one Result per answer the configured agents gave, saying what they answered (success, or node <n> failed: <e>)."`
	Instances    []InstanceRef  `yaml:"instances" doc:"get_instances: the instances in the Result's data, in any order."`
	Responses    int            `yaml:"responses" doc:"Exactly this many responses with the request's reqid reach a watching client (watched for timeouts.quiet after the first)."`
	ConfigOf     string         `yaml:"config_of" doc:"get_configuration: the Result's data is the configuration the stage_configuration request with this label sent: exactly as sent (staged), or with its id, instances and nodes (deployed)."`
	Ports        map[string]int `yaml:"ports" doc:"get_configuration: the Broker port of each named node in the returned configuration; 0 means none."`
}

// ResultExpect describes one Result.
type ResultExpect struct {
	Instance     *string `yaml:"instance" doc:"The agent the Result is about (short name), or \"\" for a Result of the controller's own."`
	Success      *bool   `yaml:"success" doc:"Its success."`
	Error        *string `yaml:"error" doc:"Its exact error text (placeholders as in expect.error)."`
	ErrorMatches string  `yaml:"error_matches" doc:"A regular expression its error text matches."`
	Node         *string `yaml:"node" doc:"Its node field; \"\" means unset (a Result about an instance or of the controller's own)."`
	Data         *string `yaml:"data" doc:"Its data is exactly this string: a config id (placeholder {config:<label>}), or a get_id_value answer such as '\"96\"' (JSON text)."`
}

// ExpectResponseStep waits for the response to an earlier request and
// checks it.
type ExpectResponseStep struct {
	ExpectResponse string `yaml:"expect_response" required:"true" doc:"Label of the request."`
	ResponseExpect `yaml:",inline"`
}

// ExpectNoResponseStep checks that a request gets no response for a while.
type ExpectNoResponseStep struct {
	ExpectNoResponse string   `yaml:"expect_no_response" required:"true" doc:"Label of the request."`
	For              Duration `yaml:"for" doc:"How long to watch, from this step on; default timeouts.quiet."`
}

// AgentEventExpect says what an agent must have received or sent.
type AgentEventExpect struct {
	Event    string   `yaml:"event" required:"true" enum:"agent-events" doc:"Event short name, e.g. set_configuration_request, agent_standby_request (received) or notify_agent_hello, set_configuration_response (sent)."`
	Count    *int     `yaml:"count" doc:"Exactly this many in total since the agent started (0: never)."`
	AtLeast  int      `yaml:"at_least" doc:"At least this many in total since the agent started; default 1 unless count is given."`
	Within   Duration `yaml:"within" doc:"How long to wait for them; default timeouts.response."`
	For      Duration `yaml:"for" doc:"With count: how long to keep watching that no more arrive; default timeouts.quiet."`
	Reqid    *string  `yaml:"reqid" doc:"Every one carries this reqid (\"\" for standby requests)."`
	ConfigOf string   `yaml:"config_of" doc:"received set_configuration_request: every one carries the configuration sent by this request label; received deploy_request: every one carries the id and nodes of the configuration that stage_configuration request sent."`
}

// ExpectReceivedStep checks what an agent (or each agent of a group)
// received from the controller.
type ExpectReceivedStep struct {
	ExpectReceived   string `yaml:"expect_received" required:"true" doc:"Agent or group."`
	AgentEventExpect `yaml:",inline"`
}

// ExpectSentStep checks what an agent (or each agent of a group) sent.
type ExpectSentStep struct {
	ExpectSent       string `yaml:"expect_sent" required:"true" doc:"Agent or group."`
	AgentEventExpect `yaml:",inline"`
}

// KillStep drops agents' connections abruptly and stops them.
type KillStep struct {
	Kill string `yaml:"kill" required:"true" doc:"Agent or group to kill (connection dropped without a close frame, as a crash)."`
}

// StopStep stops agents cleanly.
type StopStep struct {
	Stop string `yaml:"stop" required:"true" doc:"Agent or group to stop cleanly (close frame)."`
}

// RestartStep stops agents cleanly and starts them again.
type RestartStep struct {
	Restart string `yaml:"restart" required:"true" doc:"Agent or group to restart; waits for their new hello."`
}

// StartStep starts late or stopped agents.
type StartStep struct {
	Start string `yaml:"start" required:"true" doc:"Late or stopped agent or group to start; waits for its hello."`
}

// PauseStep waits.
type PauseStep struct {
	Pause Duration `yaml:"pause" required:"true" doc:"How long to wait."`
}

// SayHelloStep makes agents send another hello.
type SayHelloStep struct {
	SayHello   string  `yaml:"say_hello" required:"true" doc:"Agent or group."`
	APIVersion *uint64 `yaml:"api_version" doc:"Announce this api_version instead of the agent's own."`
}

// SetBehaviourStep replaces agents' behaviour from now on.
type SetBehaviourStep struct {
	SetBehaviour string    `yaml:"set_behaviour" required:"true" doc:"Agent or group."`
	Behaviour    Behaviour `yaml:"behaviour" required:"true" doc:"The new behaviour (sequence positions start over)."`
}

// stepKinds lists the step variants in the order of Step's fields; each
// variant's kind key is the yaml key of its first field.
var stepKinds = func() []reflect.Type {
	t := reflect.TypeOf(Step{})
	out := make([]reflect.Type, t.NumField())
	for i := range out {
		out[i] = t.Field(i).Type.Elem()
	}
	return out
}()
