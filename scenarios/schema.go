package scenarios

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/fakeagent"
)

// SchemaID identifies the scenario schema.
const SchemaID = "https://github.com/zcc-harness/zcc/scenarios/scenario.schema.json"

// Schema returns a JSON Schema (draft 2020-12) of the scenario format,
// generated from the same Go types and tags the loader decodes with, for
// editor completion and validation. The loader checks more than the schema
// can say (references between steps and agents, impossible timeouts, the
// behaviour catalogue).
func Schema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         SchemaID,
		"title":       "zcc scenario",
		"description": "One zcc scenario: fake agents, how each behaves, and the steps to run against a cluster controller. See docs/scenarios.md.",
		"$ref":        g.ref(reflect.TypeOf(Scenario{})),
		"$defs":       g.defs,
	}
	return json.MarshalIndent(root, "", "  ")
}

type schemaGen struct {
	defs map[string]any
}

// ref returns a reference to the definition of a struct type, creating it.
func (g *schemaGen) ref(t reflect.Type) string {
	name := t.Name()
	if _, ok := g.defs[name]; !ok {
		g.defs[name] = nil // placeholder: recursive types refer to themselves
		g.defs[name] = g.object(t)
	}
	return "#/$defs/" + name
}

func (g *schemaGen) object(t reflect.Type) any {
	switch t {
	case stepType:
		var variants []any
		for _, v := range stepKinds {
			variants = append(variants, map[string]any{"$ref": g.ref(v)})
		}
		return map[string]any{
			"description": "One step: exactly one of the kind keys " + strings.Join(stepKindKeys(), ", ") + ", with that kind's options.",
			"oneOf":       variants,
		}
	case instanceRefType:
		obj := g.structSchema(t)
		return map[string]any{
			"description": "An instance: an agent's or group's short name, or a mapping with explicit connectivity.",
			"oneOf":       []any{map[string]any{"type": "string", "description": "Agent or group name."}, obj},
		}
	}
	return g.structSchema(t)
}

func stepKindKeys() []string {
	var out []string
	for _, v := range stepKinds {
		out = append(out, fieldsOf(v)[0].key)
	}
	return out
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range fieldsOf(t) {
		s := g.schema(f.typ)
		doc := f.doc
		if f.typ == durationType {
			doc += " A duration: 50ms, a timing name (controller_timeout, timeout_latest, …), a multiple such as 0.5x controller_timeout, or a sum joined by +."
		}
		if doc != "" {
			s = withDescription(s, doc)
		}
		if vals := enumTag(t, f.key); vals != nil {
			s["enum"] = vals
		}
		props[f.key] = s
		if f.required {
			required = append(required, f.key)
		}
	}
	out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		out["required"] = required
	}
	if d := typeName(t); d != "" {
		out["title"] = strings.TrimPrefix(strings.TrimPrefix(d, "a "), "an ")
	}
	return out
}

func withDescription(s map[string]any, doc string) map[string]any {
	if _, isRef := s["$ref"]; isRef {
		// Siblings of $ref are allowed in 2020-12, but keep refs clean
		// for older editors: wrap.
		return map[string]any{"allOf": []any{s}, "description": doc}
	}
	s["description"] = doc
	return s
}

// enumTag returns the values of a field whose tag names a dynamic set.
func enumTag(t reflect.Type, key string) []string {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("yaml") != key {
			continue
		}
		switch f.Tag.Get("enum") {
		case "profiles":
			return api.ProfileNames()
		case "requests":
			return sortedKeys(sendable)
		case "agent-events":
			return agentEventNames()
		case "roles":
			return []string{"manager", "logger", "proxy", "worker", "none"}
		case "states":
			return []string{"running", "stopped", "failed", "crashed", "unknown"}
		}
	}
	return nil
}

func sortedKeys(m map[string]api.EventKind) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// agentEventNames lists the short names of every event an agent of any
// profile receives or sends.
func agentEventNames() []string {
	seen := map[string]bool{}
	for _, name := range api.ProfileNames() {
		p, err := api.Lookup(name)
		if err != nil {
			continue
		}
		for _, k := range append(append([]api.EventKind(nil), agentReceives...), agentSends...) {
			if p.Supports(k) {
				seen[p.ShortName(k)] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// agentRequestNames lists the keys a behaviour may use in any profile.
func agentRequestNames() []string {
	seen := map[string]bool{fakeagent.AnyRequest: true}
	for _, name := range api.ProfileNames() {
		if p, err := api.Lookup(name); err == nil {
			for _, n := range fakeagent.RequestNames(p) {
				seen[n] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var durationType = reflect.TypeOf(Duration{})

// durationPattern accepts what ParseDuration accepts.
func durationPattern() string {
	abs := `(0|([0-9]*\.?[0-9]+(ns|us|µs|ms|s|m|h))+)`
	rel := `(([0-9]+(\.[0-9]+)?x\s*)?(` + strings.Join(timingNames, "|") + `))`
	term := `(` + abs + `|` + rel + `)`
	return `^\s*` + term + `(\s*\+\s*` + term + `)*\s*$`
}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch t {
	case durationType:
		return map[string]any{
			"type":        "string",
			"pattern":     durationPattern(),
			"description": "A duration: absolute (50ms, 2s), a timing name of the target (" + strings.Join(timingNames, ", ") + "), a multiple of one (0.5x controller_timeout), or a sum of these joined by +.",
		}
	}
	if vals := enumValues(t); vals != nil {
		return map[string]any{"type": "string", "enum": vals}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.Struct:
		return map[string]any{"$ref": g.ref(t)}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		s := map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
		if t.Elem() == reflect.TypeOf(Rule{}) {
			s["propertyNames"] = map[string]any{"enum": agentRequestNames()}
		}
		return s
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	}
	return map[string]any{}
}
