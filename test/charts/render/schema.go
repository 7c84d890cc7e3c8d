package main

// The JSON-schema subset the charts' values.schema.json files use, checked against the merged values before
// any template runs (Helm does the same with the full draft-07 validator):
//   type (a name or a list of names), properties, additionalProperties (bool or schema), items, enum,
//   minimum, maximum, required, pattern; title/description/default/$schema/$id/examples are annotations.
// Any other keyword is refused when the schema is loaded, so a schema cannot rely on a check this
// validator would silently skip.
//
// Every error names the source of the offending value (values.yaml, the -f file, or --set) and its path:
//   values.yaml: ambient.dnsCapture: expected boolean, got string "yes"

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

var schemaKeywords = map[string]bool{
	"type": true, "properties": true, "additionalProperties": true, "items": true, "enum": true,
	"minimum": true, "maximum": true, "required": true, "pattern": true,
	"title": true, "description": true, "default": true, "$schema": true, "$id": true, "examples": true,
}

// Schema is one node of a parsed schema; nil fields mean "no constraint".
type Schema struct {
	Types             []string
	Properties        map[string]*Schema
	AdditionalAllowed bool    // false: keys outside Properties are errors
	AdditionalSchema  *Schema // schema for keys outside Properties (when allowed)
	Items             *Schema
	Enum              []interface{}
	Minimum, Maximum  *float64
	Required          []string
	Pattern           *regexp.Regexp
	PatternText       string
}

func loadSchema(path string) (*Schema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw interface{}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %v", path, err)
	}
	s, err := compileSchema(raw, "#")
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return s, nil
}

func compileSchema(raw interface{}, where string) (*Schema, error) {
	m, ok := raw.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: a schema must be an object", where)
	}
	s := &Schema{AdditionalAllowed: true}
	for k := range m {
		if !schemaKeywords[k] {
			return nil, fmt.Errorf("%s: keyword %q is not supported by this validator", where, k)
		}
	}
	switch t := m["type"].(type) {
	case nil:
	case string:
		s.Types = []string{t}
	case []interface{}:
		for _, x := range t {
			name, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%s/type: entries must be strings", where)
			}
			s.Types = append(s.Types, name)
		}
	default:
		return nil, fmt.Errorf("%s/type: must be a string or a list", where)
	}
	for _, t := range s.Types {
		switch t {
		case "null", "boolean", "object", "array", "number", "integer", "string":
		default:
			return nil, fmt.Errorf("%s/type: unknown type %q", where, t)
		}
	}
	if props, ok := m["properties"]; ok {
		pm, ok := props.(map[string]interface{})
		if !ok {
			return nil, fmt.Errorf("%s/properties: must be an object", where)
		}
		s.Properties = map[string]*Schema{}
		for name, sub := range pm {
			c, err := compileSchema(sub, where+"/properties/"+name)
			if err != nil {
				return nil, err
			}
			s.Properties[name] = c
		}
	}
	switch ap := m["additionalProperties"].(type) {
	case nil:
	case bool:
		s.AdditionalAllowed = ap
	case map[string]interface{}:
		c, err := compileSchema(ap, where+"/additionalProperties")
		if err != nil {
			return nil, err
		}
		s.AdditionalSchema = c
	default:
		return nil, fmt.Errorf("%s/additionalProperties: must be a boolean or a schema", where)
	}
	if items, ok := m["items"]; ok {
		c, err := compileSchema(items, where+"/items")
		if err != nil {
			return nil, err
		}
		s.Items = c
	}
	if e, ok := m["enum"]; ok {
		list, ok := e.([]interface{})
		if !ok || len(list) == 0 {
			return nil, fmt.Errorf("%s/enum: must be a non-empty list", where)
		}
		s.Enum = list
	}
	for _, kw := range []string{"minimum", "maximum"} {
		if v, ok := m[kw]; ok {
			f, ok := v.(float64)
			if !ok {
				return nil, fmt.Errorf("%s/%s: must be a number", where, kw)
			}
			if kw == "minimum" {
				s.Minimum = &f
			} else {
				s.Maximum = &f
			}
		}
	}
	if r, ok := m["required"]; ok {
		list, ok := r.([]interface{})
		if !ok {
			return nil, fmt.Errorf("%s/required: must be a list", where)
		}
		for _, x := range list {
			name, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%s/required: entries must be strings", where)
			}
			s.Required = append(s.Required, name)
		}
	}
	if p, ok := m["pattern"]; ok {
		text, ok := p.(string)
		if !ok {
			return nil, fmt.Errorf("%s/pattern: must be a string", where)
		}
		re, err := regexp.Compile(text)
		if err != nil {
			return nil, fmt.Errorf("%s/pattern: %v", where, err)
		}
		s.Pattern, s.PatternText = re, text
	}
	return s, nil
}

// ValueError is one schema violation.
type ValueError struct {
	Source, Path, Message string
}

func (e ValueError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Source, displayPath(e.Path), e.Message)
}

// validateValues checks v against s; errors come sorted by path.
func validateValues(v interface{}, s *Schema, prov Provenance) []ValueError {
	var errs []ValueError
	s.check(v, "", prov, &errs)
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Path < errs[j].Path })
	return errs
}

func (s *Schema) check(v interface{}, path string, prov Provenance, errs *[]ValueError) {
	fail := func(p, format string, args ...interface{}) {
		*errs = append(*errs, ValueError{Source: prov.sourceOf(p), Path: p, Message: fmt.Sprintf(format, args...)})
	}
	if len(s.Types) > 0 && !typeMatches(v, s.Types) {
		fail(path, "expected %s, got %s", strings.Join(s.Types, " or "), describe(v))
		return
	}
	if s.Enum != nil {
		found := false
		for _, e := range s.Enum {
			if jsonEqual(e, v) {
				found = true
				break
			}
		}
		if !found {
			allowed := make([]string, len(s.Enum))
			for i, e := range s.Enum {
				allowed[i] = compactJSON(e)
			}
			fail(path, "must be one of %s, got %s", strings.Join(allowed, ", "), compactJSON(v))
		}
	}
	if n, ok := toFloat(v); ok {
		if s.Minimum != nil && n < *s.Minimum {
			fail(path, "must be >= %v, got %v", *s.Minimum, n)
		}
		if s.Maximum != nil && n > *s.Maximum {
			fail(path, "must be <= %v, got %v", *s.Maximum, n)
		}
	}
	if str, ok := v.(string); ok && s.Pattern != nil && !s.Pattern.MatchString(str) {
		fail(path, "must match %s, got %q", s.PatternText, str)
	}
	switch t := v.(type) {
	case map[string]interface{}:
		for _, name := range s.Required {
			if _, ok := t[name]; !ok {
				fail(joinPath(path, name), "required key is missing")
			}
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			child := joinPath(path, k)
			if sub, ok := s.Properties[k]; ok {
				sub.check(t[k], child, prov, errs)
			} else if s.AdditionalSchema != nil {
				s.AdditionalSchema.check(t[k], child, prov, errs)
			} else if !s.AdditionalAllowed {
				fail(child, "unknown key (allowed here: %s)", strings.Join(s.propertyNames(), ", "))
			}
		}
	case []interface{}:
		if s.Items != nil {
			for i, item := range t {
				s.Items.check(item, fmt.Sprintf("%s[%d]", path, i), prov, errs)
			}
		}
	}
}

func (s *Schema) propertyNames() []string {
	names := make([]string, 0, len(s.Properties))
	for k := range s.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func typeMatches(v interface{}, types []string) bool {
	for _, t := range types {
		switch t {
		case "null":
			if v == nil {
				return true
			}
		case "boolean":
			if _, ok := v.(bool); ok {
				return true
			}
		case "string":
			if _, ok := v.(string); ok {
				return true
			}
		case "object":
			if _, ok := v.(map[string]interface{}); ok {
				return true
			}
		case "array":
			if _, ok := v.([]interface{}); ok {
				return true
			}
		case "number":
			if _, ok := toFloat(v); ok {
				return true
			}
		case "integer":
			if n, ok := toFloat(v); ok && n == math.Trunc(n) {
				return true
			}
		}
	}
	return false
}

func toFloat(v interface{}) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	}
	return 0, false
}

func typeName(v interface{}) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case map[string]interface{}:
		return "object"
	case []interface{}:
		return "array"
	default:
		if n, ok := toFloat(t); ok {
			if n == math.Trunc(n) {
				return "integer"
			}
			return "number"
		}
		return fmt.Sprintf("%T", v)
	}
}

// describe: `string "yes"`, `integer 3`, `object`, ...; long values are cut at 60 bytes.
func describe(v interface{}) string {
	switch v.(type) {
	case map[string]interface{}, []interface{}:
		return typeName(v)
	}
	return typeName(v) + " " + compactJSON(v)
}

func compactJSON(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	s := string(b)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// jsonEqual compares as JSON does: 1 (int64 from --set) equals 1.0 (float64 from a file).
func jsonEqual(a, b interface{}) bool {
	fa, aNum := toFloat(a)
	fb, bNum := toFloat(b)
	if aNum || bNum {
		return aNum && bNum && fa == fb
	}
	return reflect.DeepEqual(a, b)
}
