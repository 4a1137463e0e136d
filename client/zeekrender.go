package client

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// What zeek-client 1.5 prints for each Management response (zeekclient
// cli.py), reproduced from the typed responses: the same JSON (sorted keys,
// two-space indent, ASCII only), the same INI, the same log lines and exit
// codes. `zcc client --profile mgmt` prints these; tests compare them with
// what the real zeek-client printed for the same responses.

// ZeekOutput is a command's result as zeek-client reports it.
type ZeekOutput struct {
	Stdout string
	// Log holds the lines zeek-client logs to stderr, in order.
	Log []ZeekLogLine
	// Exit is the exit code.
	Exit int
}

// ZeekLogLine is one log line; zeek-client prints it as "<level>: <msg>"
// and shows warnings only with -v.
type ZeekLogLine struct {
	Level string // "error" or "warning"
	Msg   string
}

func (o *ZeekOutput) errorf(format string, args ...any) {
	o.Log = append(o.Log, ZeekLogLine{Level: "error", Msg: fmt.Sprintf(format, args...)})
}

func (o *ZeekOutput) warnf(format string, args ...any) {
	o.Log = append(o.Log, ZeekLogLine{Level: "warning", Msg: fmt.Sprintf(format, args...)})
}

// printJSON sets stdout as print(json_dumps(v)) does.
func (o *ZeekOutput) printJSON(v any) { o.Stdout = pyDumps(v, 2) + "\n" }

// zcOpt is a &optional string field as zeek-client sees it: nil when unset.
func zcOpt(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// zcData converts Result data as zeek-client's json_dumps does with Broker
// values: their Python form, ports as their number's string.
func zcData(v broker.Value) any {
	switch v.Kind() {
	case broker.KindNone:
		return nil
	case broker.KindBoolean:
		b, _ := v.AsBool()
		return b
	case broker.KindCount:
		n, _ := v.AsCount()
		return n
	case broker.KindInteger:
		n, _ := v.AsInteger()
		return n
	case broker.KindReal:
		f, _ := v.AsReal()
		return f
	case broker.KindPort:
		p, _ := v.AsPort()
		return strconv.Itoa(int(p.Number))
	case broker.KindVector, broker.KindSet:
		elems, ok := v.AsVector()
		if !ok {
			elems, _ = v.AsSet()
		}
		out := make([]any, len(elems))
		for i, e := range elems {
			out[i] = zcData(e)
		}
		return out
	case broker.KindTable:
		entries, _ := v.AsTable()
		obj := pyObject{}
		for _, e := range entries {
			obj[fmt.Sprint(JSONValue(e.Key))] = zcData(e.Value)
		}
		return obj
	}
	return JSONValue(v)
}

// zcTruthy is Python's truth value of a zeek-client brokertype: none and
// empty containers are false, everything else true.
func zcTruthy(v broker.Value) bool {
	switch v.Kind() {
	case broker.KindNone:
		return false
	case broker.KindVector, broker.KindSet, broker.KindTable:
		return v.Len() > 0
	}
	return true
}

// noDataEvent renders the response event as zeek-client quotes it when
// the Result lacks its data.
func noDataEvent(ev broker.Event, name string) string {
	if ev.Name != "" {
		return ZeekEventString(ev)
	}
	return name + "(reqid: " + pyClass(broker.String("")) + ", result: " + pyClass(broker.Vector()) + ")"
}

// ZeekGetInstances renders get-instances: {name: {"host", "port"?}}.
func ZeekGetInstances(resp api.GetInstancesResponse, ev broker.Event) ZeekOutput {
	var o ZeekOutput
	res := resp.Result
	if !res.Success {
		o.errorf("%s", orNoReason(res.Error))
		o.Exit = 1
		return o
	}
	if res.Data.IsNone() {
		o.errorf("received result did not contain instance data: %s", noDataEvent(ev, "Management::Controller::API::get_instances_response"))
		o.Exit = 1
		return o
	}
	out := pyObject{}
	instances, err := api.Mgmt.DecodeInstances(res.Data)
	if err != nil {
		// zeek-client logs bad instance data and still prints what it has.
		o.errorf("instance data invalid: %v", err)
	}
	sort.SliceStable(instances, func(i, j int) bool { return instances[i].Name < instances[j].Name })
	for _, in := range instances {
		j := instanceJSON(in)
		delete(j, "name")
		out[in.Name] = j
	}
	o.printJSON(out)
	return o
}

func orNoReason(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// instanceJSON is zeek-client's Instance.to_json_data: the port when set,
// else the host unless it is 0.0.0.0.
func instanceJSON(in api.Instance) pyObject {
	host := in.Host.String()
	if p, ok := in.ListenPort.Get(); ok {
		return pyObject{"name": in.Name, "host": host, "port": int(p.Number)}
	}
	if host != "0.0.0.0" {
		return pyObject{"name": in.Name, "host": host}
	}
	return pyObject{"name": in.Name}
}

// ZeekGetConfig renders get-config: the configuration as JSON (asJSON) or
// as zeek-client's INI.
func ZeekGetConfig(resp api.GetConfigurationResponse, ev broker.Event, asJSON bool) ZeekOutput {
	var o ZeekOutput
	res := resp.Result
	if !res.Success {
		o.errorf("%s", orNoReason(res.Error))
		o.Exit = 1
		return o
	}
	if !zcTruthy(res.Data) {
		o.errorf("received result did not contain configuration data: %s", noDataEvent(ev, "Management::Controller::API::get_configuration_response"))
		o.Exit = 1
		return o
	}
	cfg, err := api.Mgmt.DecodeConfiguration(res.Data)
	if err != nil {
		o.errorf("configuration data invalid: %v", err)
		o.Exit = 1
		return o
	}
	sort.SliceStable(cfg.Instances, func(i, j int) bool { return cfg.Instances[i].Name < cfg.Instances[j].Name })
	sort.SliceStable(cfg.Nodes, func(i, j int) bool { return cfg.Nodes[i].Name < cfg.Nodes[j].Name })
	if asJSON {
		o.Stdout = pyDumps(configJSON(cfg), 2) + "\n"
	} else {
		o.Stdout = ConfigINI(cfg)
	}
	return o
}

func optPortJSON(p api.Opt[broker.Port]) any {
	if v, ok := p.Get(); ok {
		return int(v.Number)
	}
	return nil
}

// configJSON is zeek-client's Configuration.to_json_data (instances and
// nodes already sorted by name).
func configJSON(cfg api.Configuration) pyObject {
	instances := make([]any, len(cfg.Instances))
	for i, in := range cfg.Instances {
		instances[i] = instanceJSON(in)
	}
	nodes := make([]any, len(cfg.Nodes))
	for i, n := range cfg.Nodes {
		var scripts, options, iface, cpu any
		if s, ok := n.Scripts.Get(); ok {
			list := make([]any, len(s))
			for k, x := range s {
				list[k] = x
			}
			scripts = list
		}
		if opts, ok := n.Options.Get(); ok {
			// zeek-client cannot print options (it never sends any); zcc
			// shows them as name/value pairs.
			list := make([]any, len(opts))
			for k, x := range opts {
				list[k] = pyObject{"name": x.Name, "value": x.Value}
			}
			options = list
		}
		if s, ok := n.Interface.Get(); ok {
			iface = s
		}
		if c, ok := n.CPUAffinity.Get(); ok {
			cpu = c
		}
		env := pyObject{}
		for k, v := range n.Env {
			env[k] = v
		}
		nodes[i] = pyObject{
			"name": n.Name, "instance": n.Instance, "role": n.Role.String(),
			"port": optPortJSON(n.Port), "scripts": scripts, "options": options,
			"interface": iface, "cpu_affinity": cpu, "env": env,
			"metrics_port": optPortJSON(n.MetricsPort),
		}
	}
	return pyObject{"id": cfg.ID, "instances": instances, "nodes": nodes}
}

// ConfigINI renders cfg as zeek-client's get-config prints it (Python's
// configparser: instance names lowercased like every key, "key = value",
// a blank line after each section), which its stage-config reads back.
func ConfigINI(cfg api.Configuration) string {
	instances := append([]api.Instance(nil), cfg.Instances...)
	sort.SliceStable(instances, func(i, j int) bool { return instances[i].Name < instances[j].Name })
	nodes := append([]api.Node(nil), cfg.Nodes...)
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	var b strings.Builder
	item := func(key, value string) {
		b.WriteString(key + " = " + strings.ReplaceAll(value, "\n", "\n\t") + "\n")
	}
	if len(instances) > 0 {
		b.WriteString("[instances]\n")
		for _, in := range instances {
			key := strings.ToLower(in.Name)
			if p, ok := in.ListenPort.Get(); ok {
				item(key, hostText(in.Host)+":"+strconv.Itoa(int(p.Number)))
			} else {
				b.WriteString(key + "\n")
			}
		}
		b.WriteString("\n")
	}
	quoteSpaced := func(s string) string {
		if len(strings.Fields(s)) > 1 {
			return `"` + s + `"`
		}
		return s
	}
	for _, n := range nodes {
		b.WriteString("[" + n.Name + "]\n")
		item("instance", n.Instance)
		item("role", n.Role.String())
		if p, ok := n.Port.Get(); ok {
			item("port", strconv.Itoa(int(p.Number)))
		}
		if s, ok := n.Scripts.Get(); ok && len(s) > 0 {
			sorted := append([]string(nil), s...)
			sort.Strings(sorted)
			for i := range sorted {
				sorted[i] = quoteSpaced(sorted[i])
			}
			item("scripts", strings.Join(sorted, " "))
		}
		if s, ok := n.Interface.Get(); ok {
			item("interface", s)
		}
		if c, ok := n.CPUAffinity.Get(); ok {
			item("cpu_affinity", strconv.FormatInt(c, 10))
		}
		if len(n.Env) > 0 {
			keys := make([]string, 0, len(n.Env))
			for k := range n.Env {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = k + "=" + quoteSpaced(n.Env[k])
			}
			item("env", strings.Join(parts, " "))
		}
		if p, ok := n.MetricsPort.Get(); ok {
			item("metrics_port", strconv.Itoa(int(p.Number)))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// hostText is Python's str() of an address (IPv6 without brackets, as
// zeek-client writes it).
func hostText(a netip.Addr) string { return a.String() }

// ZeekStageConfig renders stage-config: {"errors": [...], "results":
// {"id"?}}. ok is false when a Result failed (deploy-config then stops).
func ZeekStageConfig(results []api.Result) (o ZeekOutput, ok bool) {
	errs := []any{}
	out := pyObject{}
	for _, r := range results {
		if !r.Success {
			o.Exit = 1
			errs = append(errs, orNoReason(r.Error))
			continue
		}
		if zcTruthy(r.Data) {
			out["id"] = zcData(r.Data)
		}
	}
	o.printJSON(pyObject{"errors": errs, "results": out})
	return o, o.Exit == 0
}

// ZeekDeploy renders deploy: {"errors": [...], "results": {"id"?,
// "nodes"?: {node: {"instance", "success", "stdout"?, "stderr"?}}}}.
func ZeekDeploy(results []api.Result) ZeekOutput {
	var o ZeekOutput
	errs := []any{}
	out := pyObject{}
	for _, r := range results {
		if !r.Success {
			o.Exit = 1
		}
		if !r.Success && !r.Node.Set && r.Error != "" {
			// An agent's own failure or a controller-side problem.
			errs = append(errs, r.Error)
			continue
		}
		if r.Success && !r.Node.Set && r.Instance == "" && zcTruthy(r.Data) {
			out["id"] = zcData(r.Data)
			continue
		}
		if r.Instance == "" {
			o.warnf("skipping unexpected response %s", r)
			continue
		}
		if !r.Node.Set {
			continue // an agent without nodes to deploy
		}
		nodes, _ := out["nodes"].(pyObject)
		if nodes == nil {
			nodes = pyObject{}
			out["nodes"] = nodes
		}
		entry := pyObject{"success": r.Success, "instance": r.Instance}
		nodes[r.Node.V] = entry
		if zcTruthy(r.Data) {
			outputs, err := api.Mgmt.DecodeNodeOutputs(r.Data)
			if err != nil {
				o.errorf("node %s: NodeOutputs data invalid: %v", r.Node.V, err)
				continue
			}
			entry["stdout"], entry["stderr"] = outputs.Stdout, outputs.Stderr
		}
	}
	o.printJSON(pyObject{"errors": errs, "results": out})
	return o
}

// sortedResults orders results as zeek-client's sorted() does.
func sortedResults(rs []api.Result) []api.Result {
	key := func(r api.Result) resultKey {
		var k resultKey
		if r.Instance != "" {
			inst := r.Instance
			k.instance = &inst
		}
		if r.Node.Set {
			node := r.Node.V
			k.node = &node
		}
		return k
	}
	return pySorted(rs, func(a, b api.Result) bool { return pyLessResult(key(a), key(b)) })
}

func errorEntry(source, err string) pyObject {
	return pyObject{"source": zcOpt(source), "error": zcOpt(err)}
}

// ZeekGetNodes renders get-nodes: {"errors": [{"source", "error"}],
// "results": {instance: {node: {"state", "mgmt_role", "cluster_role",
// "pid"?, "port"?, "metrics_port"?}}}}.
func ZeekGetNodes(results []api.Result) ZeekOutput {
	var o ZeekOutput
	errs := []any{}
	out := pyObject{}
	for _, r := range sortedResults(results) {
		if !r.Success {
			errs = append(errs, errorEntry(r.Instance, r.Error))
			continue
		}
		if r.Data.IsNone() {
			errs = append(errs, errorEntry(r.Instance, "result does not contain node status data"))
			continue
		}
		nodes := pyObject{}
		out[r.Instance] = nodes
		statuses, problem := zcNodeStatuses(r.Data)
		if problem != "" {
			// zeek-client logs it and keeps the instance, empty.
			o.errorf("NodeStatus data invalid: %s", problem)
			continue
		}
		for _, s := range statuses {
			var mgmtRole, clusterRole any
			if s.MgmtRole != api.RoleNone {
				mgmtRole = s.MgmtRole.String()
			}
			if s.ClusterRole != api.ClusterRoleNone {
				clusterRole = s.ClusterRole.String()
			}
			entry := pyObject{"state": s.State.String(), "mgmt_role": mgmtRole, "cluster_role": clusterRole}
			if pid, ok := s.PID.Get(); ok {
				entry["pid"] = pid
			}
			if p, ok := s.Port.Get(); ok {
				entry["port"] = int(p.Number)
			}
			if p, ok := s.MetricsPort.Get(); ok {
				entry["metrics_port"] = int(p.Number)
			}
			nodes[s.Node] = entry
		}
	}
	o.printJSON(pyObject{"errors": errs, "results": out})
	if len(errs) > 0 {
		o.Exit = 1
	}
	return o
}

// zcNodeStatuses reads a NodeStatus vector; its problem text for a bad
// enum is zeek-client's ("unexpected enum value for State: <repr>").
func zcNodeStatuses(data broker.Value) ([]api.NodeStatus, string) {
	elems, ok := data.AsVector()
	if !ok {
		if data.Kind() != broker.KindSet && data.Kind() != broker.KindTable {
			return nil, fmt.Sprintf("'%s' object is not iterable", pyClassNames[data.Kind()])
		}
	}
	// zeek-client converts the elements in order and, within one, the
	// state, management role and cluster role enums in that order.
	enums := []struct {
		field int
		class string
		scope string
	}{{1, "State", "Management"}, {2, "ManagementRole", "Management"}, {3, "ClusterRole", "Supervisor"}}
	for _, e := range elems {
		fields, ok := e.AsVector()
		if !ok || len(fields) < 4 {
			break // the strict decoder below says what is wrong
		}
		for _, en := range enums {
			if msg := zcEnumProblem(fields[en.field], en.class, en.scope); msg != "" {
				return nil, msg
			}
		}
	}
	statuses, err := api.Mgmt.DecodeNodeStatuses(data)
	if err != nil {
		return nil, err.Error()
	}
	sort.SliceStable(statuses, func(i, j int) bool { return statuses[i].Node < statuses[j].Node })
	return statuses, ""
}

var zcEnumNames = map[string][]string{
	"State":          {"PENDING", "RUNNING", "STOPPED", "FAILED", "CRASHED", "UNKNOWN"},
	"ManagementRole": {"NONE", "AGENT", "CONTROLLER", "NODE"},
	"ClusterRole":    {"NONE", "LOGGER", "MANAGER", "PROXY", "WORKER"},
}

// zcEnumProblem applies zeek-client's Enum.from_brokertype: the module
// must match, and the last name component, upper-cased, must exist.
func zcEnumProblem(v broker.Value, class, scope string) string {
	name, ok := v.AsEnum()
	if !ok {
		name, ok = v.AsString()
	}
	if !ok {
		return ""
	}
	bad := fmt.Sprintf("unexpected enum value for %s: %s", class, pyRepr(v))
	module, _, _ := strings.Cut(name, "::")
	if module != scope {
		return bad
	}
	short := name[strings.LastIndex(name, "::")+2:]
	short = short[strings.LastIndex(short, ".")+1:]
	for _, n := range zcEnumNames[class] {
		if n == strings.ToUpper(short) {
			return ""
		}
	}
	return bad
}

// ZeekGetIDValue renders get-id-value: {"errors": [{"source", "error"}],
// "results": {node: <the value parsed from its JSON text>}}.
func ZeekGetIDValue(results []api.Result) ZeekOutput {
	var o ZeekOutput
	errs := []any{}
	out := pyObject{}
	for _, r := range sortedResults(results) {
		if !r.Success {
			errs = append(errs, errorEntry(r.Node.V, r.Error))
			continue
		}
		if r.Node.V != "" {
			text, ok := r.Data.AsString()
			if !ok {
				repr := "None"
				if !r.Data.IsNone() {
					repr = pyRepr(r.Data)
				}
				errs = append(errs, errorEntry(r.Node.V, "invalid result data type "+repr))
				continue
			}
			v, err := pyLoads(text)
			if err != nil {
				errs = append(errs, errorEntry(r.Node.V, "JSON decode error: "+err.Error()))
				continue
			}
			out[r.Node.V] = v
			continue
		}
		data := "None"
		if !r.Data.IsNone() {
			data = pyStr(r.Data)
		}
		errs = append(errs, pyObject{"error": "result lacking node: " + data})
	}
	o.printJSON(pyObject{"errors": errs, "results": out})
	if len(errs) > 0 {
		o.Exit = 1
	}
	return o
}

// ZeekRestart renders restart: {"errors": [{"source", "error"}],
// "results": {node: success}}.
func ZeekRestart(results []api.Result) ZeekOutput {
	var o ZeekOutput
	errs := []any{}
	out := pyObject{}
	for _, r := range sortedResults(results) {
		if !r.Success && r.Instance == "" {
			errs = append(errs, errorEntry(r.Node.V, r.Error))
			continue
		}
		if r.Node.V != "" {
			out[r.Node.V] = r.Success
			continue
		}
		errs = append(errs, pyObject{"error": "result lacking node: " + r.String()})
	}
	o.printJSON(pyObject{"errors": errs, "results": out})
	if len(errs) > 0 {
		o.Exit = 1
	}
	return o
}

// ZeekTestTimeout renders test-timeout: {"error", "success"}; any answer
// exits 0.
func ZeekTestTimeout(r api.Result) ZeekOutput {
	var o ZeekOutput
	o.printJSON(pyObject{"success": r.Success, "error": zcOpt(r.Error)})
	return o
}
