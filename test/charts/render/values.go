package main

// Values as `helm template` builds them: the chart's values.yaml, then each -f file in order, then each
// --set / --set-string in order, deep-merged. Maps merge key by key; any other value replaces; a null from a
// later source deletes the key (Helm's way of unsetting a default).
//
// Numbers: YAML files go through JSON as in Helm (sigs.k8s.io/yaml), so every number from a file is a
// float64 (`{{ .Values.x }}` of 1000000 prints 1e+06, as it does in Helm); --set numbers are int64.
// YAML is parsed as YAML 1.1 (yaml.v2, as Helm), so an unquoted `yes` is a boolean.
//
// Provenance: every path remembers the source that last set it, so a schema error can name the file.

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	yaml2 "gopkg.in/yaml.v2"
)

// Values is a tree of map[string]interface{}, []interface{}, string, bool, float64, int64 and nil.
type Values = map[string]interface{}

// Provenance maps a dotted path ("ambient.dnsCapture", "excludeNamespaces[0]") to the source that set it.
type Provenance map[string]string

// sourceOf names the source of path, or of its nearest ancestor that has one.
func (p Provenance) sourceOf(path string) string {
	for {
		if s, ok := p[path]; ok {
			return s
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut <= 0 {
			if s, ok := p[""]; ok {
				return s
			}
			return "values"
		}
		path = path[:cut]
	}
}

// parseYAMLValues decodes one values document the way Helm does: YAML 1.1 -> JSON -> map[string]interface{}.
// An empty document is an empty map.
func parseYAMLValues(name string, data []byte) (Values, error) {
	var raw interface{}
	if err := yaml2.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if raw == nil {
		return Values{}, nil
	}
	converted, err := jsonCompatible(raw, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	asMap, ok := converted.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: top level must be a map of values, got %s", name, typeName(converted))
	}
	// The JSON round trip turns every number into float64, as sigs.k8s.io/yaml does for Helm.
	b, err := json.Marshal(asMap)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	var out Values
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return out, nil
}

// jsonCompatible turns yaml.v2's map[interface{}]interface{} into map[string]interface{}; a non-string key is
// an error (Helm refuses it too).
func jsonCompatible(v interface{}, path string) (interface{}, error) {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		out := make(map[string]interface{}, len(t))
		for k, val := range t {
			// As sigs.k8s.io/yaml: YAML 1.1 scalar keys become their text (`on:` is the key "true").
			var ks string
			switch key := k.(type) {
			case string:
				ks = key
			case bool:
				ks = strconv.FormatBool(key)
			case int:
				ks = strconv.Itoa(key)
			case int64:
				ks = strconv.FormatInt(key, 10)
			case uint64:
				ks = strconv.FormatUint(key, 10)
			case float64:
				ks = strconv.FormatFloat(key, 'g', -1, 64)
			default:
				return nil, fmt.Errorf("%s: key %v is not a scalar", displayPath(path), k)
			}
			c, err := jsonCompatible(val, joinPath(path, ks))
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, val := range t {
			c, err := jsonCompatible(val, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	default:
		return v, nil
	}
}

func loadValuesFile(path string) (Values, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading values file: %v", err)
	}
	return parseYAMLValues(path, data)
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func displayPath(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

// mergeValues merges src into dst (dst changes), recording src's name for every path it sets.
func mergeValues(dst, src Values, srcName string, prov Provenance, prefix string) {
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := src[k]
		path := joinPath(prefix, k)
		if v == nil {
			delete(dst, k)
			prov[path] = srcName
			continue
		}
		if srcMap, ok := v.(map[string]interface{}); ok {
			if dstMap, ok := dst[k].(map[string]interface{}); ok {
				prov[path] = srcName
				mergeValues(dstMap, srcMap, srcName, prov, path)
				continue
			}
		}
		dst[k] = deepCopy(v)
		markAll(dst[k], srcName, prov, path)
	}
}

func markAll(v interface{}, srcName string, prov Provenance, path string) {
	prov[path] = srcName
	switch t := v.(type) {
	case map[string]interface{}:
		for k, c := range t {
			markAll(c, srcName, prov, joinPath(path, k))
		}
	case []interface{}:
		for i, c := range t {
			markAll(c, srcName, prov, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

func deepCopy(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		out := make(map[string]interface{}, len(t))
		for k, c := range t {
			out[k] = deepCopy(c)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, c := range t {
			out[i] = deepCopy(c)
		}
		return out
	default:
		return v
	}
}

// parseSet applies one --set (typed) or --set-string argument, Helm's strvals subset:
//
//	a.b=c            nested keys          a\.b=c       a key containing a dot
//	a=1,b=true       several, comma-separated (\, for a literal comma)
//	a={x,y}          a list               a[1]=x       a list element (the list grows with nulls)
//	a=null           deletes a default    (--set only; --set-string keeps "null")
//
// Typed values: true/false -> bool, integers without a leading zero -> int64, null -> nil, else string.
func parseSet(arg string, typed bool) (Values, error) {
	out := Values{}
	for _, assignment := range splitUnescaped(arg, ',', true) {
		eq := indexUnescaped(assignment, '=')
		if eq < 0 {
			return nil, fmt.Errorf("--set %q: %q has no '=' (expected key=value)", arg, assignment)
		}
		keyText, valText := assignment[:eq], assignment[eq+1:]
		if keyText == "" {
			return nil, fmt.Errorf("--set %q: empty key", arg)
		}
		var val interface{}
		if strings.HasPrefix(valText, "{") && strings.HasSuffix(valText, "}") {
			items := []interface{}{}
			inner := valText[1 : len(valText)-1]
			if inner != "" {
				for _, item := range splitUnescaped(inner, ',', false) {
					items = append(items, setScalar(unescape(item), typed))
				}
			}
			val = items
		} else {
			val = setScalar(unescape(valText), typed)
		}
		if err := assignPath(out, splitUnescaped(keyText, '.', false), val); err != nil {
			return nil, fmt.Errorf("--set %q: %v", arg, err)
		}
	}
	return out, nil
}

func setScalar(s string, typed bool) interface{} {
	if !typed {
		return s
	}
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if len(s) > 1 && s[0] == '0' {
		return s
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	return s
}

// assignPath sets root[k1][k2]...=val; "name[3]" segments address list elements.
func assignPath(root Values, segments []string, val interface{}) error {
	var cur interface{} = root
	for i, rawSeg := range segments {
		seg := unescape(rawSeg)
		name, index, hasIndex, err := splitIndex(seg)
		if err != nil {
			return err
		}
		last := i == len(segments)-1
		m, ok := cur.(map[string]interface{})
		if !ok {
			return fmt.Errorf("key %q: parent is not a map", seg)
		}
		if !hasIndex {
			if last {
				m[name] = val
				return nil
			}
			next, ok := m[name].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				m[name] = next
			}
			cur = next
			continue
		}
		list, _ := m[name].([]interface{})
		for len(list) <= index {
			list = append(list, nil)
		}
		m[name] = list
		if last {
			list[index] = val
			return nil
		}
		next, ok := list[index].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			list[index] = next
		}
		cur = next
	}
	return nil
}

func splitIndex(seg string) (name string, index int, hasIndex bool, err error) {
	open := strings.IndexByte(seg, '[')
	if open < 0 || !strings.HasSuffix(seg, "]") {
		return seg, 0, false, nil
	}
	n, convErr := strconv.Atoi(seg[open+1 : len(seg)-1])
	if convErr != nil || n < 0 || n > 65535 {
		return "", 0, false, fmt.Errorf("key %q: list index must be an integer in [0, 65535]", seg)
	}
	return seg[:open], n, true, nil
}

// splitUnescaped splits on sep not preceded by a backslash; with braces, also not inside {...}.
// The backslashes stay (unescape removes them later).
func splitUnescaped(s string, sep byte, braces bool) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\':
			i++
		case braces && s[i] == '{':
			depth++
		case braces && s[i] == '}' && depth > 0:
			depth--
		case s[i] == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func indexUnescaped(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == c {
			return i
		}
	}
	return -1
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
