package scenarios

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// validateSchema checks v against the subset of JSON Schema that Schema
// generates ($ref, oneOf, allOf, type, properties, required,
// additionalProperties, propertyNames, items, enum, pattern, minimum), so
// the test can tell whether the schema and the loader agree.
func validateSchema(root, s map[string]any, v any, path string) []string {
	if ref, ok := s["$ref"].(string); ok {
		def := root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		return validateSchema(root, def, v, path)
	}
	var errs []string
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			errs = append(errs, validateSchema(root, sub.(map[string]any), v, path)...)
		}
	}
	if one, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, sub := range one {
			if len(validateSchema(root, sub.(map[string]any), v, path)) == 0 {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Sprintf("%s: matches %d of oneOf", path, n))
		}
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || e == v
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v not in enum", path, v))
		}
	}
	switch s["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want an object", path))
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := m[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: missing %s", path, r))
			}
		}
		for k, val := range m {
			if names, ok := s["propertyNames"].(map[string]any); ok {
				errs = append(errs, validateSchema(root, names, k, path+"."+k+"(name)")...)
			}
			if ps, ok := props[k]; ok {
				errs = append(errs, validateSchema(root, ps.(map[string]any), val, path+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					errs = append(errs, fmt.Sprintf("%s: unknown property %s", path, k))
				}
			case map[string]any:
				errs = append(errs, validateSchema(root, ap, val, path+"."+k)...)
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want an array", path))
		}
		for i, item := range a {
			errs = append(errs, validateSchema(root, s["items"].(map[string]any), item, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want a string, got %T", path, v))
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			errs = append(errs, fmt.Sprintf("%s: %q does not match the pattern", path, str))
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			return append(errs, fmt.Sprintf("%s: want an integer", path))
		}
		if minimum, ok := s["minimum"].(float64); ok && f < minimum {
			errs = append(errs, fmt.Sprintf("%s: below minimum", path))
		}
	case "number":
		if _, ok := v.(float64); !ok {
			errs = append(errs, fmt.Sprintf("%s: want a number", path))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			errs = append(errs, fmt.Sprintf("%s: want a boolean", path))
		}
	}
	return errs
}

func asStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, x.(string))
	}
	return out
}

// yamlAsJSON reads a YAML file as JSON values would be.
func yamlAsJSON(t *testing.T, file string) any {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var v any
	if err := json.Unmarshal(j, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestSchemaAcceptsTheLibrary(t *testing.T) {
	root := loadSchema(t)
	files, _ := filepath.Glob("cc42/*.yaml")
	for _, f := range files {
		if errs := validateSchema(root, root, yamlAsJSON(t, f), "$"); len(errs) > 0 {
			t.Errorf("%s does not validate against the schema:\n  %s", f, strings.Join(errs, "\n  "))
		}
	}
}

// TestSchemaRejectsShapeErrors: what the schema can say (unknown keys,
// wrong types, missing keys, unknown enum values, bad durations), it says
// about the broken fixtures too.
func TestSchemaRejectsShapeErrors(t *testing.T) {
	root := loadSchema(t)
	for file, want := range map[string]string{
		"unknown-key.yaml":      "$.agents[0]: unknown property behavior",
		"wrong-types.yaml":      "$.fresh: want a boolean",
		"missing-required.yaml": "$: missing covers",
		"bad-durations.yaml":    `$.agents[0].hello_interval: "fast" does not match the pattern`,
		"step-kinds.yaml":       "$.steps[0]: matches 0 of oneOf",
		"bad-rules.yaml":        `$.agents[0].behaviour.on.agent_standby_request.action: explode not in enum`,
	} {
		errs := validateSchema(root, root, yamlAsJSON(t, filepath.Join("testdata/broken", file)), "$")
		sort.Strings(errs)
		found := false
		for _, e := range errs {
			found = found || e == want
		}
		if !found {
			t.Errorf("%s: schema errors lack %q:\n  %s", file, want, strings.Join(errs, "\n  "))
		}
	}
}

func TestSchemaDescribesEveryKey(t *testing.T) {
	root := loadSchema(t)
	if root["$id"] != SchemaID || root["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("schema header: %v %v", root["$id"], root["$schema"])
	}
	for name, def := range root["$defs"].(map[string]any) {
		props, _ := def.(map[string]any)["properties"].(map[string]any)
		for key, p := range props {
			if d, _ := p.(map[string]any)["description"].(string); d == "" {
				t.Errorf("%s.%s has no description", name, key)
			}
		}
	}
}
