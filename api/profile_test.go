package api_test

import (
	"testing"

	"github.com/zcc-harness/zcc/api"
)

func TestProfileLookupAndNames(t *testing.T) {
	p, err := api.Lookup("cc42")
	if err != nil || p != api.CC42 {
		t.Fatalf("Lookup(cc42) = %v, %v", p, err)
	}
	if _, err := api.Lookup("zeek3"); err == nil {
		t.Fatal("Lookup of an unknown profile succeeded")
	}
	if got := api.CC42.ShortName(api.KindAgentSetConfigurationRequest); got != "set_configuration_request" {
		t.Errorf("ShortName = %q", got)
	}
	if got := api.CC42.AgentTopic("instance-1"); got != "zeek/cluster-control/agent/instance-1" {
		t.Errorf("AgentTopic = %q", got)
	}
	if api.CC42.Supports(api.KindDeployRequest) {
		t.Error("cc42 claims the mgmt-only deploy_request")
	}
	for _, k := range allKinds() {
		name, _ := api.CC42.EventName(k)
		if back, ok := api.CC42.KindOf(name); !ok || back != k {
			t.Errorf("KindOf(EventName(%d)) = %d, %v", k, back, ok)
		}
	}
	if n := len(allKinds()); n != 17 {
		t.Errorf("cc42 has %d events, spec §3 lists 17", n)
	}
}

func TestReqidOf(t *testing.T) {
	if r, ok := api.ReqidOf(api.SetConfigurationResponse{Reqid: "r1"}); !ok || r != "r1" {
		t.Errorf("ReqidOf(set_configuration_response) = %q, %v", r, ok)
	}
	if _, ok := api.ReqidOf(api.NotifyAgentHello{Instance: "i"}); ok {
		t.Error("notify_agent_hello has no reqid")
	}
}

func TestWithReqid(t *testing.T) {
	m, ok := api.WithReqid(api.SetConfigurationResponse{Reqid: "a", Results: []api.Result{{Reqid: "a"}}}, "b")
	r, _ := m.(api.SetConfigurationResponse)
	if !ok || r.Reqid != "b" || r.Results[0].Reqid != "a" {
		t.Fatalf("WithReqid = %+v, %v: want only the event's reqid replaced", m, ok)
	}
	if m, ok := api.WithReqid(&api.DeployRequest{Reqid: "x"}, "y"); !ok || m.(api.DeployRequest).Reqid != "y" {
		t.Fatalf("pointer message: %+v, %v", m, ok)
	}
	if _, ok := api.WithReqid(api.NotifyAgentHello{Instance: "a"}, "z"); ok {
		t.Fatal("a hello has no reqid")
	}
}
