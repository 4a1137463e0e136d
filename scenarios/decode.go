package scenarios

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/goccy/go-yaml/ast"

	"github.com/zcc-harness/zcc/fakeagent"
)

// decoder turns a goccy/go-yaml AST into the format's Go values by
// reflection over the same struct tags the schema is generated from. It
// never stops at the first problem: every unknown key, wrong type and
// missing required key is recorded with its position, and the value
// positions are kept by path so later checks can point at them.
type decoder struct {
	sink    *errorSink
	pos     map[string]Pos // position of the value at a path
	keyPos  map[string]Pos // position of the key that introduced a path
	anchors map[string]ast.Node
	visits  int
}

// maxVisits bounds the work of one file, so that nested aliases cannot
// blow it up exponentially.
const maxVisits = 50000

func newDecoder(sink *errorSink) *decoder {
	return &decoder{sink: sink, pos: map[string]Pos{}, keyPos: map[string]Pos{}, anchors: map[string]ast.Node{}}
}

// nodePos is where a node starts, as a person reads it: a block mapping
// starts at its first key, everything else at its own token.
func nodePos(n ast.Node) Pos {
	switch m := n.(type) {
	case *ast.MappingNode:
		if len(m.Values) > 0 && !m.IsFlowStyle {
			return nodePos(m.Values[0].Key)
		}
	case *ast.MappingValueNode:
		return nodePos(m.Key)
	}
	if n == nil || n.GetToken() == nil {
		return Pos{1, 1}
	}
	p := n.GetToken().Position
	return Pos{p.Line, p.Column}
}

// collectAnchors records every anchor of the document up front, so that an
// alias finds its anchor even when the anchor sits under a key the
// decoder skips (an unknown key used as a place for shared values).
func (d *decoder) collectAnchors(n ast.Node) {
	d.visits++
	if n == nil || d.visits >= maxVisits {
		return
	}
	switch t := n.(type) {
	case *ast.AnchorNode:
		if t.Name != nil {
			d.anchors[t.Name.GetToken().Value] = t.Value
		}
		d.collectAnchors(t.Value)
	case *ast.TagNode:
		d.collectAnchors(t.Value)
	case *ast.MappingNode:
		for _, v := range t.Values {
			d.collectAnchors(v)
		}
	case *ast.MappingValueNode:
		d.collectAnchors(t.Key)
		d.collectAnchors(t.Value)
	case *ast.SequenceNode:
		for _, v := range t.Values {
			d.collectAnchors(v)
		}
	}
}

// resolve strips tags and anchors and follows aliases.
func (d *decoder) resolve(n ast.Node, path string) (ast.Node, string, bool) {
	tag := ""
	for {
		switch t := n.(type) {
		case *ast.TagNode:
			tag = t.Start.Value
			n = t.Value
		case *ast.AnchorNode:
			if t.Name != nil {
				d.anchors[t.Name.GetToken().Value] = t.Value
			}
			n = t.Value
		case *ast.AliasNode:
			name := ""
			if t.Value != nil {
				name = t.Value.GetToken().Value
			}
			target, ok := d.anchors[name]
			if !ok {
				d.sink.add(nodePos(t), path, "alias *%s refers to no anchor defined before it", name)
				return nil, "", false
			}
			n = target
		default:
			return n, tag, true
		}
	}
}

// pairs returns the key/value pairs of a mapping node.
func pairs(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}, true
	}
	return nil, false
}

func keyText(k ast.Node) string {
	if s, ok := k.(*ast.StringNode); ok {
		return s.Value
	}
	if k == nil || k.GetToken() == nil {
		return ""
	}
	return k.GetToken().Value
}

// describe says what a node is, for "want X, got Y" messages.
func describe(n ast.Node) string {
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return "nothing"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode:
		return strconv.Quote(v.Value)
	case *ast.LiteralNode:
		return "a block of text"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "the number " + v.GetToken().Value
	case *ast.BoolNode:
		return v.GetToken().Value
	}
	return n.Type().String()
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldInfo is one key of a struct type, after flattening inline fields.
type fieldInfo struct {
	key      string
	index    []int
	required bool
	doc      string
	typ      reflect.Type
}

var fieldCache sync.Map // reflect.Type → []fieldInfo

func fieldsOf(t reflect.Type) []fieldInfo {
	if v, ok := fieldCache.Load(t); ok {
		return v.([]fieldInfo)
	}
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		if tag == ",inline" {
			for _, sub := range fieldsOf(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		out = append(out, fieldInfo{key: tag, index: []int{i}, required: f.Tag.Get("required") == "true", doc: f.Tag.Get("doc"), typ: f.Type})
	}
	fieldCache.Store(t, out)
	return out
}

func keysOf(fields []fieldInfo) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.key
	}
	return out
}

// typeNames are how messages name the format's records.
var typeNames = map[reflect.Type]string{
	reflect.TypeOf(Scenario{}):         "a scenario",
	reflect.TypeOf(Agent{}):            "an agent",
	reflect.TypeOf(Rule{}):             "a rule",
	reflect.TypeOf(Behaviour{}):        "a behaviour",
	reflect.TypeOf(Backoff{}):          "a backoff",
	reflect.TypeOf(Timeouts{}):         "timeouts",
	reflect.TypeOf(ConfigSpec{}):       "a configuration",
	reflect.TypeOf(InstanceRef{}):      "an instance",
	reflect.TypeOf(NodeSpec{}):         "a node",
	reflect.TypeOf(ResponseExpect{}):   "an expectation",
	reflect.TypeOf(ResultExpect{}):     "a result",
	reflect.TypeOf(AgentEventExpect{}): "an agent expectation",
}

func typeName(t reflect.Type) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	if k := stepKindOf(t); k != "" {
		return "a " + k + " step"
	}
	return t.Name()
}

// stepKindOf returns the kind key of a step variant type.
func stepKindOf(t reflect.Type) string {
	for _, v := range stepKinds {
		if v == t {
			return fieldsOf(t)[0].key
		}
	}
	return ""
}

// enumValues lists the values of the string types that take one of a
// fixed set.
func enumValues(t reflect.Type) []string {
	switch t {
	case reflect.TypeOf(fakeagent.Action("")):
		var out []string
		for _, a := range fakeagent.Actions() {
			out = append(out, string(a))
		}
		return out
	case reflect.TypeOf(fakeagent.ConnectMode("")):
		return []string{string(fakeagent.ConnectDial), string(fakeagent.ConnectListen)}
	case reflect.TypeOf(fakeagent.HelloPolicy("")):
		return []string{string(fakeagent.HelloOnce), string(fakeagent.HelloRepeat), string(fakeagent.HelloNone)}
	case reflect.TypeOf(QuirkMode("")):
		return []string{string(QuirksZeek42), string(QuirksFixed), string(QuirksAny)}
	}
	return nil
}

var (
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	instanceRefType     = reflect.TypeOf(InstanceRef{})
	stepType            = reflect.TypeOf(Step{})
)

// decode fills v from node n; path names v in messages ("agents[1].count").
func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	d.visits++
	if d.visits == maxVisits {
		d.sink.add(nodePos(n), "", "the document is too large to be a scenario (aliases expand to more than %d values)", maxVisits)
	}
	if d.visits >= maxVisits {
		return
	}
	n, tag, ok := d.resolve(n, path)
	if !ok {
		return
	}
	pos := nodePos(n)
	d.pos[path] = pos
	if _, null := n.(*ast.NullNode); null || n == nil {
		return // absent; required keys are checked by the caller
	}
	t := v.Type()
	switch {
	case t == stepType:
		d.decodeStep(n, v, path)
		return
	case t == instanceRefType:
		d.decodeInstanceRef(n, v, path)
		return
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		text, ok := d.scalarText(n, path)
		if !ok {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(text)); err != nil {
			d.sink.add(pos, path, "%s", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		elem := reflect.New(t.Elem())
		d.decode(n, elem.Elem(), path)
		v.Set(elem)
	case reflect.Struct:
		d.decodeStruct(n, v, path, fieldsOf(t), typeName(t))
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			d.sink.add(pos, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(seq.Values), len(seq.Values))
		for i, item := range seq.Values {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		ps, ok := pairs(n)
		if !ok {
			d.sink.add(pos, path, "want a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(t, len(ps))
		seen := map[string]Pos{}
		for _, p := range ps {
			key := keyText(p.Key)
			kp := join(path, key)
			d.keyPos[kp] = nodePos(p.Key)
			if prev, dup := seen[key]; dup {
				d.sink.add(nodePos(p.Key), kp, "duplicate key (first at line %d)", prev.Line)
				continue
			}
			seen[key] = nodePos(p.Key)
			elem := reflect.New(t.Elem()).Elem()
			d.decode(p.Value, elem, kp)
			m.SetMapIndex(reflect.ValueOf(key), elem)
		}
		v.Set(m)
	case reflect.String:
		if tag == "!!str" {
			v.SetString(n.GetToken().Value)
			return
		}
		var s string
		switch sn := n.(type) {
		case *ast.StringNode:
			s = sn.Value
		case *ast.LiteralNode:
			s = sn.Value.Value
		default:
			d.sink.add(pos, path, "want a string, got %s (quote it if it is meant as text)", describe(n))
			return
		}
		if vals := enumValues(t); vals != nil && !contains(vals, s) {
			d.sink.add(pos, path, "unknown value %q (want %s)", s, strings.Join(vals, ", "))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.sink.add(pos, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Int, reflect.Int64, reflect.Uint64:
		in, ok := n.(*ast.IntegerNode)
		if !ok {
			d.sink.add(pos, path, "want a whole number, got %s", describe(n))
			return
		}
		d.setInt(in, v, path)
	case reflect.Float64:
		switch num := n.(type) {
		case *ast.FloatNode:
			v.SetFloat(num.Value)
		case *ast.IntegerNode:
			f, _ := strconv.ParseFloat(num.GetToken().Value, 64)
			v.SetFloat(f)
		default:
			d.sink.add(pos, path, "want a number, got %s", describe(n))
		}
	default:
		d.sink.add(pos, path, "cannot hold a value (harness bug: type %s)", t)
	}
}

func (d *decoder) setInt(in *ast.IntegerNode, v reflect.Value, path string) {
	pos := nodePos(in)
	var neg bool
	var mag uint64 // magnitude
	switch x := in.Value.(type) {
	case int64:
		neg = x < 0
		if neg {
			mag = uint64(-(x + 1)) + 1
		} else {
			mag = uint64(x)
		}
	case uint64:
		mag = x
	default:
		d.sink.add(pos, path, "want a whole number, got %s", in.GetToken().Value)
		return
	}
	switch v.Kind() {
	case reflect.Uint64:
		if neg {
			d.sink.add(pos, path, "must not be negative, got %s", in.GetToken().Value)
			return
		}
		v.SetUint(mag)
	default:
		limit := uint64(math.MaxInt32)
		if v.Kind() == reflect.Int64 {
			limit = math.MaxInt64
		}
		if neg && mag > limit+1 || !neg && mag > limit {
			d.sink.add(pos, path, "%s is out of range", in.GetToken().Value)
			return
		}
		if neg {
			v.SetInt(-int64(mag-1) - 1)
		} else {
			v.SetInt(int64(mag))
		}
	}
}

// scalarText returns the text of a scalar for a TextUnmarshaler.
func (d *decoder) scalarText(n ast.Node, path string) (string, bool) {
	switch s := n.(type) {
	case *ast.StringNode:
		return s.Value, true
	case *ast.IntegerNode, *ast.FloatNode:
		return s.GetToken().Value, true
	}
	d.sink.add(nodePos(n), path, "want a string, got %s", describe(n))
	return "", false
}

// decodeStruct fills a struct from a mapping: unknown keys, duplicate
// keys and missing required keys are errors.
func (d *decoder) decodeStruct(n ast.Node, v reflect.Value, path string, fields []fieldInfo, what string) {
	ps, ok := pairs(n)
	if !ok {
		d.sink.add(nodePos(n), path, "want a mapping (%s), got %s", strings.TrimPrefix(strings.TrimPrefix(what, "a "), "an "), describe(n))
		return
	}
	byKey := map[string]fieldInfo{}
	for _, f := range fields {
		byKey[f.key] = f
	}
	seen := map[string]Pos{}
	for _, p := range ps {
		if _, merge := p.Key.(*ast.MergeKeyNode); merge {
			d.sink.add(nodePos(p.Key), path, "merge keys (<<) are not supported; repeat the keys, or use an alias for a whole value")
			continue
		}
		key := keyText(p.Key)
		kp := join(path, key)
		kpos := nodePos(p.Key)
		f, known := byKey[key]
		if !known {
			d.sink.add(kpos, kp, "unknown key in %s (%s)", what, suggest(key, keysOf(fields)))
			continue
		}
		if prev, dup := seen[key]; dup {
			d.sink.add(kpos, kp, "duplicate key (first at line %d)", prev.Line)
			continue
		}
		seen[key] = kpos
		d.keyPos[kp] = kpos
		d.decode(p.Value, v.FieldByIndex(f.index), kp)
		if f.required && isNull(p.Value) {
			d.sink.add(kpos, kp, "needs a value")
		}
	}
	for _, f := range fields {
		if _, ok := seen[f.key]; f.required && !ok {
			d.sink.addKeyed(nodePos(n), join(path, f.key), path, "missing required key %q", f.key)
		}
	}
}

func isNull(n ast.Node) bool {
	_, null := n.(*ast.NullNode)
	return n == nil || null
}

// decodeStep picks the step's variant by its kind key and decodes the
// mapping into it.
func (d *decoder) decodeStep(n ast.Node, v reflect.Value, path string) {
	ps, ok := pairs(n)
	if !ok {
		d.sink.add(nodePos(n), path, "want a mapping (a step), got %s", describe(n))
		return
	}
	var kinds []string
	var chosen []int
	for i, vt := range stepKinds {
		kind := fieldsOf(vt)[0].key
		kinds = append(kinds, kind)
		for _, p := range ps {
			if keyText(p.Key) == kind {
				chosen = append(chosen, i)
			}
		}
	}
	switch len(chosen) {
	case 0:
		var given []string
		for _, p := range ps {
			given = append(given, keyText(p.Key))
		}
		hint := ""
		if len(given) > 0 {
			if s := suggest(given[0], kinds); strings.HasPrefix(s, "did you mean") {
				hint = "; " + s
			}
		}
		d.sink.add(nodePos(n), path, "a step needs one of the keys %s%s", strings.Join(kinds, ", "), hint)
		return
	case 1:
	default:
		names := make([]string, len(chosen))
		for i, c := range chosen {
			names[i] = kinds[c]
		}
		d.sink.add(nodePos(n), path, "a step does one thing, but this one has %s: split it into steps", strings.Join(names, " and "))
		return
	}
	vt := stepKinds[chosen[0]]
	variant := reflect.New(vt)
	d.decodeStruct(n, variant.Elem(), path, fieldsOf(vt), typeName(vt))
	v.Field(chosen[0]).Set(variant)
}

// decodeInstanceRef reads an instance written as a bare name or as a
// mapping.
func (d *decoder) decodeInstanceRef(n ast.Node, v reflect.Value, path string) {
	ref := InstanceRef{pos: nodePos(n)}
	switch s := n.(type) {
	case *ast.StringNode:
		ref.Name, ref.bare = s.Value, true
	default:
		if _, ok := pairs(n); !ok {
			d.sink.add(nodePos(n), path, "want an agent name or a mapping {name, host, port}, got %s", describe(n))
			return
		}
		d.decodeStruct(n, reflect.ValueOf(&ref).Elem(), path, fieldsOf(instanceRefType), typeName(instanceRefType))
	}
	v.Set(reflect.ValueOf(ref))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest names the closest known key, or lists them all.
func suggest(got string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(got, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	if len(known) == 0 {
		return "there are none"
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return "known: " + strings.Join(sorted, ", ")
}

// editDistance is the Levenshtein distance, for did-you-mean hints.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
