package main

// The template engine, after Helm's pkg/engine: one text/template set holding every file under templates/
// (so `define`s are shared), sprig's TxtFuncMap without env/expandenv, Helm's own functions, and
// missingkey=zero with "<no value>" erased from the output. Files whose base name starts with "_" only
// define helpers and render nothing.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig"
	yaml2 "gopkg.in/yaml.v2"
)

// maxIncludeDepth bounds recursive `include` (Helm: 1000).
const maxIncludeDepth = 1000

// ChartMeta is Chart.yaml; templates see it as .Chart with Helm's field names.
type ChartMeta struct {
	APIVersion  string   `yaml:"apiVersion"`
	Name        string   `yaml:"name"`
	Version     string   `yaml:"version"`
	AppVersion  string   `yaml:"appVersion"`
	Description string   `yaml:"description"`
	Type        string   `yaml:"type"`
	KubeVersion string   `yaml:"kubeVersion"`
	Home        string   `yaml:"home"`
	Keywords    []string `yaml:"keywords"`
	Sources     []string `yaml:"sources"`
}

// KubeVersion is .Capabilities.KubeVersion.
type KubeVersion struct {
	Version, Major, Minor, GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

// APIVersions is .Capabilities.APIVersions; Has answers for the built-in groups only (offline, as
// `helm template` without --api-versions).
type APIVersions []string

func (a APIVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

// Capabilities is .Capabilities.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions APIVersions
}

// Release is .Release.
type Release struct {
	Name, Namespace, Service string
	IsInstall, IsUpgrade     bool
	Revision                 int
}

// templateFile is one file under templates/, named "<chart>/templates/<relative path>" as in Helm.
type templateFile struct {
	name, content string
}

func readTemplates(chartDir, chartName string) ([]templateFile, error) {
	root := filepath.Join(chartDir, "templates")
	var files []templateFile
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, templateFile{name: path.Join(chartName, "templates", filepath.ToSlash(rel)), content: string(data)})
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, err
}

// isPartial: helpers (_helpers.tpl) and NOTES.txt render nothing into the manifest.
func isPartial(name string) bool {
	base := path.Base(name)
	return strings.HasPrefix(base, "_") || strings.EqualFold(base, "NOTES.txt")
}

// renderTemplates executes every non-partial file; the result maps file name to rendered text.
func renderTemplates(files []templateFile, top map[string]interface{}) (map[string]string, error) {
	root := template.New("gotpl")
	includeDepth := map[string]int{}
	funcs := helmFuncs()
	funcs["include"] = func(name string, data interface{}) (string, error) {
		if includeDepth[name] >= maxIncludeDepth {
			return "", fmt.Errorf("rendering template has a nested reference name: %s: unable to execute template", name)
		}
		includeDepth[name]++
		defer func() { includeDepth[name]-- }()
		var buf strings.Builder
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := root.Clone()
		if err != nil {
			return "", err
		}
		name := "tpl"
		if m, ok := data.(map[string]interface{}); ok {
			if t, ok := m["Template"].(map[string]interface{}); ok {
				if n, ok := t["Name"].(string); ok && n != "" {
					name = n
				}
			}
		}
		t, err := clone.New(name).Option("missingkey=zero").Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, data); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	root.Funcs(funcs).Option("missingkey=zero")
	for _, f := range files {
		if _, err := root.New(f.name).Parse(f.content); err != nil {
			return nil, cleanupError(err)
		}
	}
	out := map[string]string{}
	for _, f := range files {
		if isPartial(f.name) {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": f.name, "BasePath": path.Dir(f.name)}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, f.name, data); err != nil {
			return nil, cleanupError(err)
		}
		out[f.name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, nil
}

// frameRE finds a template frame's location; the last one before "error calling required/fail" is the
// innermost (an error raised inside `include` arrives wrapped by every caller's frame).
var frameRE = regexp.MustCompile(`template: (\S+?:\d+:\d+): executing `)

// cleanupError shortens a `required`/`fail` error the way Helm does:
//
//	execution error at (ztunnel/templates/daemonset.yaml:12:5): <message>
func cleanupError(err error) error {
	text := err.Error()
	cut, prefix := -1, ""
	for _, p := range []string{"error calling required: ", "error calling fail: "} {
		if i := strings.LastIndex(text, p); i > cut {
			cut, prefix = i, p
		}
	}
	if cut < 0 {
		return err
	}
	message := text[cut+len(prefix):]
	frames := frameRE.FindAllStringSubmatch(text[:cut], -1)
	if len(frames) == 0 {
		return errors.New("execution error: " + message)
	}
	return fmt.Errorf("execution error at (%s): %s", frames[len(frames)-1][1], message)
}

// helmFuncs: sprig minus env/expandenv (Helm removes them), plus Helm's own functions except include/tpl,
// which need the template set and are added by renderTemplates.
func helmFuncs() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = toYAML
	f["mustToYaml"] = mustToYAML
	f["fromYaml"] = fromYAML
	f["fromYamlArray"] = fromYAMLArray
	f["toJson"] = toJSON
	f["mustToJson"] = mustToJSON
	f["fromJson"] = fromJSON
	f["fromJsonArray"] = fromJSONArray
	f["required"] = func(msg string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(msg)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, errors.New(msg)
		}
		return val, nil
	}
	f["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	// `helm template` has no cluster: lookup finds nothing.
	f["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	return f
}

// toYAML is Helm's: JSON first (so struct tags and number forms match), then YAML 1.1 with sorted keys and
// unindented sequences, trailing newline dropped; errors render as "".
func toYAML(v interface{}) string {
	s, err := mustToYAML(v)
	if err != nil {
		return ""
	}
	return s
}

func mustToYAML(v interface{}) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var generic interface{}
	if err := yaml2.Unmarshal(j, &generic); err != nil {
		return "", err
	}
	b, err := yaml2.Marshal(generic)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

func fromYAML(s string) map[string]interface{} {
	m, err := parseYAMLValues("fromYaml", []byte(s))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	var raw interface{}
	if err := yaml2.Unmarshal([]byte(s), &raw); err != nil {
		return []interface{}{err.Error()}
	}
	c, err := jsonCompatible(raw, "")
	if err != nil {
		return []interface{}{err.Error()}
	}
	list, ok := c.([]interface{})
	if !ok {
		return []interface{}{"fromYamlArray: not a list"}
	}
	return list
}

func toJSON(v interface{}) string {
	s, err := mustToJSON(v)
	if err != nil {
		return ""
	}
	return s
}

func mustToJSON(v interface{}) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	var a []interface{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return []interface{}{err.Error()}
	}
	return a
}
