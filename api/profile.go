package api

import (
	"fmt"
	"sort"
	"strings"
)

// Profile is one dialect of the controller API: its topics, event names,
// record layouts and enum spellings. Callers hold a *Profile and never
// branch on the dialect themselves.
type Profile struct {
	// Name is the profile's identifier: "cc42" or "mgmt".
	Name string
	// ControllerTopic is where clients publish requests and the controller
	// publishes responses.
	ControllerTopic string
	// AgentTopicPrefix is the prefix the controller subscribes to; each
	// agent uses AgentTopicPrefix + "/" + name.
	AgentTopicPrefix string
	// DefaultPort is the controller's default listening port (2150 for
	// cc42's Broker port, 2149 for mgmt's WebSocket port).
	DefaultPort uint16
	// APIVersion is the value agents announce in notify_agent_hello.
	APIVersion uint64
	// Description says who speaks this dialect.
	Description string

	// names maps every supported event kind to its fully qualified name;
	// kinds is the inverse.
	names map[EventKind]string
	kinds map[string]EventKind
	// codec converts records and events for this profile's layouts.
	codec codec
}

// AgentTopic returns the topic of the agent named instance.
func (p *Profile) AgentTopic(instance string) string {
	return p.AgentTopicPrefix + "/" + instance
}

// EventName returns the fully qualified event name of k in this profile.
func (p *Profile) EventName(k EventKind) (string, bool) {
	n, ok := p.names[k]
	return n, ok
}

// ShortName returns the event name without its module path
// ("set_configuration_request"), for messages and logs.
func (p *Profile) ShortName(k EventKind) string {
	n, ok := p.names[k]
	if !ok {
		return fmt.Sprintf("event kind %d", k)
	}
	return n[strings.LastIndex(n, "::")+2:]
}

// KindOf maps a fully qualified event name to its kind.
func (p *Profile) KindOf(name string) (EventKind, bool) {
	k, ok := p.kinds[name]
	return k, ok
}

// Supports reports whether the profile has an event of kind k.
func (p *Profile) Supports(k EventKind) bool {
	_, ok := p.names[k]
	return ok
}

// String returns the profile's name.
func (p *Profile) String() string { return p.Name }

var profiles = map[string]*Profile{}

func register(p *Profile) *Profile {
	p.kinds = make(map[string]EventKind, len(p.names))
	for k, n := range p.names {
		p.kinds[n] = k
	}
	profiles[p.Name] = p
	return p
}

// Lookup returns the profile with the given name.
func Lookup(name string) (*Profile, error) {
	if p, ok := profiles[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("unknown profile %q (known: %s)", name, strings.Join(ProfileNames(), ", "))
}

// ProfileNames lists the known profiles, sorted.
func ProfileNames() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CC42 is the ClusterController API v1 of Zeek 4.2 (spec
// clustercontroller-v1.md, profile P1), carried over Broker's WebSocket
// JSON transport.
var CC42 = register(&Profile{
	Name:             "cc42",
	ControllerTopic:  "zeek/cluster-control/controller",
	AgentTopicPrefix: "zeek/cluster-control/agent",
	DefaultPort:      2150,
	APIVersion:       1,
	Description:      "ClusterController::API / ClusterAgent::API v1 (Zeek 4.2)",
	names: map[EventKind]string{
		KindGetInstancesRequest:           "ClusterController::API::get_instances_request",
		KindGetInstancesResponse:          "ClusterController::API::get_instances_response",
		KindSetConfigurationRequest:       "ClusterController::API::set_configuration_request",
		KindSetConfigurationResponse:      "ClusterController::API::set_configuration_response",
		KindTestTimeoutRequest:            "ClusterController::API::test_timeout_request",
		KindTestTimeoutResponse:           "ClusterController::API::test_timeout_response",
		KindNotifyAgentsReady:             "ClusterController::API::notify_agents_ready",
		KindAgentSetConfigurationRequest:  "ClusterAgent::API::set_configuration_request",
		KindAgentSetConfigurationResponse: "ClusterAgent::API::set_configuration_response",
		KindAgentWelcomeRequest:           "ClusterAgent::API::agent_welcome_request",
		KindAgentWelcomeResponse:          "ClusterAgent::API::agent_welcome_response",
		KindAgentStandbyRequest:           "ClusterAgent::API::agent_standby_request",
		KindAgentStandbyResponse:          "ClusterAgent::API::agent_standby_response",
		KindNotifyAgentHello:              "ClusterAgent::API::notify_agent_hello",
		KindNotifyChange:                  "ClusterAgent::API::notify_change",
		KindNotifyError:                   "ClusterAgent::API::notify_error",
		KindNotifyLog:                     "ClusterAgent::API::notify_log",
	},
	codec: cc42Codec{},
})
