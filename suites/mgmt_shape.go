package suites

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/zcc-harness/zcc/broker"
)

// What zeek-client 1.5.0 needs of a Management-API response (spec
// management-websocket.md §2.3, §2.4, §4.7), checked on the raw Broker
// event rather than through package api, so that a decoder that is too
// lenient (or a controller that agrees with it) cannot hide a shape the
// real client would choke on. The names and layouts below are stated here
// from the notes, not imported.

const mgmtAPI = "Management::Controller::API::"

// mgmtResponseOf maps each request's short name to its response and to
// whether the response carries one Result (else a ResultVec).
var mgmtResponseOf = map[string]struct {
	response string
	single   bool
}{
	"get_instances_request":       {"get_instances_response", true},
	"stage_configuration_request": {"stage_configuration_response", false},
	"get_configuration_request":   {"get_configuration_response", true},
	"deploy_request":              {"deploy_response", false},
	"get_nodes_request":           {"get_nodes_response", false},
	"get_id_value_request":        {"get_id_value_response", false},
	"restart_request":             {"restart_response", false},
	"test_timeout_request":        {"test_timeout_response", true},
}

// Enum names of the Management types (§2.3), fully qualified as zeek-client
// expects them.
var (
	mgmtStates       = enumSet("Management::", "PENDING", "RUNNING", "STOPPED", "FAILED", "CRASHED", "UNKNOWN")
	mgmtRoles        = enumSet("Management::", "NONE", "AGENT", "CONTROLLER", "NODE")
	mgmtClusterRoles = enumSet("Supervisor::", "NONE", "LOGGER", "MANAGER", "PROXY", "WORKER")
	tcpPortRE        = regexp.MustCompile(`^[0-9]+/tcp$`)
)

func enumSet(module string, names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[module+n] = true
	}
	return m
}

// shapeChecker collects problems, each with the path it was found at.
type shapeChecker struct{ problems []string }

func (s *shapeChecker) addf(path, format string, args ...any) {
	s.problems = append(s.problems, path+": "+fmt.Sprintf(format, args...))
}

// kind checks v's Broker type; none is allowed when optional.
func (s *shapeChecker) kind(path string, v broker.Value, want broker.Kind, optional bool) bool {
	if optional && v.IsNone() {
		return false
	}
	if v.Kind() != want {
		s.addf(path, "want %s%s, got %s", want, map[bool]string{true: " or none", false: ""}[optional], v)
		return false
	}
	return true
}

// record checks that v is a record (vector) of one of the field counts.
func (s *shapeChecker) record(path, what string, v broker.Value, counts ...int) ([]broker.Value, bool) {
	fields, ok := v.AsVector()
	if !ok {
		s.addf(path, "%s must be a record (vector), got %s", what, v)
		return nil, false
	}
	for _, n := range counts {
		if len(fields) == n {
			return fields, true
		}
	}
	s.addf(path, "%s must have %s fields, got %d", what, joinCounts(counts), len(fields))
	return nil, false
}

func joinCounts(cs []int) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprint(c)
	}
	return strings.Join(parts, " or ")
}

func (s *shapeChecker) enum(path string, v broker.Value, valid map[string]bool, optional bool) {
	if !s.kind(path, v, broker.KindEnum, optional) {
		return
	}
	name, _ := v.AsEnum()
	if !valid[name] {
		s.addf(path, "enum %q is not one zeek-client knows (fully qualified, e.g. %s)", name, anyKey(valid))
	}
}

func anyKey(m map[string]bool) string {
	best := ""
	for k := range m {
		if best == "" || k < best {
			best = k
		}
	}
	return best
}

func (s *shapeChecker) port(path string, v broker.Value, optional bool) {
	if !s.kind(path, v, broker.KindPort, optional) {
		return
	}
	p, _ := v.AsPort()
	if !tcpPortRE.MatchString(p.String()) {
		s.addf(path, "port %s: zeek-client reads ports as N/tcp", p)
	}
}

// instance checks an Instance: name, host, listen_port?.
func (s *shapeChecker) instance(path string, v broker.Value) {
	f, ok := s.record(path, "Instance", v, 3)
	if !ok {
		return
	}
	s.kind(path+".name", f[0], broker.KindString, false)
	s.kind(path+".host", f[1], broker.KindAddress, false)
	s.port(path+".listen_port", f[2], true)
}

// node checks a Node: name, instance, role, state, p?, scripts?,
// options?, interface?, cpu_affinity?, env, metrics_port? (Zeek ≥ 7; a
// 10-field Node from older controllers is still read).
func (s *shapeChecker) node(path string, v broker.Value) {
	f, ok := s.record(path, "Node", v, 11, 10)
	if !ok {
		return
	}
	s.kind(path+".name", f[0], broker.KindString, false)
	s.kind(path+".instance", f[1], broker.KindString, false)
	s.enum(path+".role", f[2], mgmtClusterRoles, false)
	s.enum(path+".state", f[3], mgmtStates, false)
	s.port(path+".p", f[4], true)
	if s.kind(path+".scripts", f[5], broker.KindVector, true) {
		scripts, _ := f[5].AsVector()
		for i, sc := range scripts {
			s.kind(fmt.Sprintf("%s.scripts[%d]", path, i), sc, broker.KindString, false)
		}
	}
	s.kind(path+".options", f[6], broker.KindSet, true)
	s.kind(path+".interface", f[7], broker.KindString, true)
	s.kind(path+".cpu_affinity", f[8], broker.KindInteger, true)
	s.kind(path+".env", f[9], broker.KindTable, false)
	if len(f) == 11 {
		s.port(path+".metrics_port", f[10], true)
	}
}

// nodeStatus checks a NodeStatus: node, state, mgmt_role, cluster_role,
// pid?, p?, metrics_port? (6 fields before Zeek 7).
func (s *shapeChecker) nodeStatus(path string, v broker.Value) {
	f, ok := s.record(path, "NodeStatus", v, 7, 6)
	if !ok {
		return
	}
	s.kind(path+".node", f[0], broker.KindString, false)
	s.enum(path+".state", f[1], mgmtStates, false)
	s.enum(path+".mgmt_role", f[2], mgmtRoles, false)
	s.enum(path+".cluster_role", f[3], mgmtClusterRoles, false)
	s.kind(path+".pid", f[4], broker.KindInteger, true)
	s.port(path+".p", f[5], true)
	if len(f) == 7 {
		s.port(path+".metrics_port", f[6], true)
	}
}

// configuration checks a Configuration: id, set of Instance, set of Node.
func (s *shapeChecker) configuration(path string, v broker.Value) {
	f, ok := s.record(path, "Configuration", v, 3)
	if !ok {
		return
	}
	s.kind(path+".id", f[0], broker.KindString, false)
	if s.kind(path+".instances", f[1], broker.KindSet, false) {
		insts, _ := f[1].AsSet()
		for i, in := range insts {
			s.instance(fmt.Sprintf("%s.instances[%d]", path, i), in)
		}
	}
	if s.kind(path+".nodes", f[2], broker.KindSet, false) {
		nodes, _ := f[2].AsSet()
		for i, n := range nodes {
			s.node(fmt.Sprintf("%s.nodes[%d]", path, i), n)
		}
	}
}

// shapeResult is one Result as the checker read it.
type shapeResult struct {
	success        bool
	instance, node bool // set
	errorSet       bool
	data           broker.Value
}

// result checks a Result's six fields: reqid, success, instance?, data?,
// error?, node?.
func (s *shapeChecker) result(path string, v broker.Value) (shapeResult, bool) {
	f, ok := s.record(path, "Result", v, 6)
	if !ok {
		return shapeResult{}, false
	}
	var r shapeResult
	s.kind(path+".reqid", f[0], broker.KindString, false)
	if s.kind(path+".success", f[1], broker.KindBoolean, false) {
		r.success, _ = f[1].AsBool()
	}
	r.instance = s.kind(path+".instance", f[2], broker.KindString, true)
	r.data = f[3]
	r.errorSet = s.kind(path+".error", f[4], broker.KindString, true)
	r.node = s.kind(path+".node", f[5], broker.KindString, true)
	if !r.success && !r.errorSet && !(r.node && !r.data.IsNone()) {
		// zeek-client prints the error of a failed Result; only a failed
		// deploy node may carry NodeOutputs instead.
		s.addf(path+".error", "a failed Result needs an error text for zeek-client to show")
	}
	return r, true
}

// mgmtShapeProblems checks ev as the response zeek-client expects to the
// request named request (short name) with reqid. It returns every problem
// found; none means zeek-client 1.5.0 reads the response.
func mgmtShapeProblems(request, reqid string, ev broker.Event) []string {
	s := &shapeChecker{}
	want, ok := mgmtResponseOf[request]
	if !ok {
		return []string{"no response is defined for " + request}
	}
	if ev.Name != mgmtAPI+want.response {
		s.addf("event", "want %s%s in answer to %s, got %s", mgmtAPI, want.response, request, ev.Name)
		return s.problems
	}
	if len(ev.Args) != 2 {
		s.addf("args", "want 2 arguments (reqid, result%s), got %d", map[bool]string{true: "", false: "s"}[want.single], len(ev.Args))
		return s.problems
	}
	if got, _ := ev.Args[0].AsString(); got != reqid || ev.Args[0].Kind() != broker.KindString {
		s.addf("args[0]", "the reqid must be echoed as a string %q, got %s", reqid, ev.Args[0])
	}
	var results []broker.Value
	if want.single {
		results = []broker.Value{ev.Args[1]}
	} else {
		vec, ok := ev.Args[1].AsVector()
		if !ok {
			s.addf("args[1]", "want a ResultVec (vector), got %s", ev.Args[1])
			return s.problems
		}
		results = vec
	}
	for i, rv := range results {
		path := "result"
		if !want.single {
			path = fmt.Sprintf("results[%d]", i)
		}
		r, ok := s.result(path, rv)
		if !ok {
			continue
		}
		s.data(request, path+".data", r, i == len(results)-1)
	}
	if request == "deploy_request" {
		s.deployConfigID(results)
	}
	return s.problems
}

// data checks a Result's data as the response kind defines it (§2.3).
func (s *shapeChecker) data(request, path string, r shapeResult, last bool) {
	d := r.data
	switch request {
	case "get_instances_request":
		if !r.success {
			return
		}
		if s.kind(path, d, broker.KindVector, false) {
			insts, _ := d.AsVector()
			for i, in := range insts {
				s.instance(fmt.Sprintf("%s[%d]", path, i), in)
			}
		}
	case "stage_configuration_request":
		if r.success {
			s.kind(path+" (config id)", d, broker.KindString, false)
		}
	case "get_configuration_request":
		if r.success {
			s.configuration(path, d)
		}
	case "deploy_request":
		if !r.success && r.node && !d.IsNone() {
			if f, ok := s.record(path, "NodeOutputs", d, 2); ok {
				s.kind(path+".stdout", f[0], broker.KindString, false)
				s.kind(path+".stderr", f[1], broker.KindString, false)
			}
		}
	case "get_nodes_request":
		if r.success {
			if s.kind(path, d, broker.KindVector, false) {
				sts, _ := d.AsVector()
				for i, st := range sts {
					s.nodeStatus(fmt.Sprintf("%s[%d]", path, i), st)
				}
			}
		}
	case "get_id_value_request":
		if r.success {
			s.kind(path+" (JSON text)", d, broker.KindString, false)
			if !r.node {
				s.addf(path, "a value needs the node it came from")
			}
		}
	}
}

// deployConfigID checks the controller's own Result of a deploy: success
// T, no instance, no node, the config id as a string, and last.
func (s *shapeChecker) deployConfigID(results []broker.Value) {
	for i, rv := range results {
		f, ok := rv.AsVector()
		if !ok || len(f) != 6 {
			continue
		}
		success, _ := f[1].AsBool()
		if !success || !f[2].IsNone() || !f[5].IsNone() {
			continue
		}
		// A success without instance and node is the controller's own.
		path := fmt.Sprintf("results[%d]", i)
		if i != len(results)-1 {
			s.addf(path, "the controller's config-id Result must come last (%d of %d)", i+1, len(results))
		}
		s.kind(path+".data (config id)", f[3], broker.KindString, false)
		if !f[4].IsNone() {
			s.addf(path+".error", "the config-id Result carries no error, got %s", f[4])
		}
	}
}
