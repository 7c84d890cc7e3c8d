package main

// Table tests of the renderer's Helm semantics: --set parsing, value merging, the schema subset, the
// template functions and error forms, and manifest ordering. The charts themselves are tested by
// run_chart_tests.sh through the built binary.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func asJSON(v interface{}) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseSet(t *testing.T) {
	rows := []struct {
		name, arg string
		typed     bool
		want      string // JSON
		err       string
	}{
		{"nested", "a.b=c", true, `{"a":{"b":"c"}}`, ""},
		{"typed scalars", "i=5,b=true,f=FALSE,n=null,s=x y", true, `{"b":true,"f":false,"i":5,"n":null,"s":"x y"}`, ""},
		{"leading zero stays a string", "tag=007", true, `{"tag":"007"}`, ""},
		{"set-string keeps text", "b=true,i=5", false, `{"b":"true","i":"5"}`, ""},
		{"escaped dot in key", `podAnnotations.prometheus\.io/port=15020`, true, `{"podAnnotations":{"prometheus.io/port":15020}}`, ""},
		{"escaped comma in value", `a=x\,y`, true, `{"a":"x,y"}`, ""},
		{"list", "ns={kube-system,istio-system}", true, `{"ns":["kube-system","istio-system"]}`, ""},
		{"empty list", "ns={}", true, `{"ns":[]}`, ""},
		{"list index grows with nulls", "l[2]=z", true, `{"l":[null,null,"z"]}`, ""},
		{"map in list", "t[0].key=k,t[0].operator=Exists", true, `{"t":[{"key":"k","operator":"Exists"}]}`, ""},
		{"no equals", "novalue", true, "", "has no '='"},
		{"bad index", "l[x]=1", true, "", "list index"},
	}
	for _, r := range rows {
		got, err := parseSet(r.arg, r.typed)
		if r.err != "" {
			if err == nil || !strings.Contains(err.Error(), r.err) {
				t.Errorf("%s: error %v, want one containing %q", r.name, err, r.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", r.name, err)
			continue
		}
		if asJSON(got) != r.want {
			t.Errorf("%s: got %s, want %s", r.name, asJSON(got), r.want)
		}
	}
}

func TestParseYAMLValuesIsHelmLike(t *testing.T) {
	v, err := parseYAMLValues("v.yaml", []byte("on: yes\nnum: 1000000\nq: \"yes\"\nl: [1, 2]\n"))
	if err != nil {
		t.Fatal(err)
	}
	// YAML 1.1 booleans (`on` as a key too, made text as sigs.k8s.io/yaml does), numbers as float64 (JSON),
	// quoted strings stay strings.
	want := Values{"true": true, "num": float64(1000000), "q": "yes", "l": []interface{}{float64(1), float64(2)}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got %#v, want %#v", v, want)
	}
	if _, err := parseYAMLValues("v.yaml", []byte("- a\n")); err == nil || !strings.Contains(err.Error(), "top level must be a map") {
		t.Errorf("a list at the top: error %v", err)
	}
	if _, err := parseYAMLValues("v.yaml", []byte("a: [\n")); err == nil || !strings.HasPrefix(err.Error(), "v.yaml: ") {
		t.Errorf("invalid YAML must name the file: %v", err)
	}
}

func TestMergeValues(t *testing.T) {
	dst := Values{"a": map[string]interface{}{"x": 1.0, "y": 2.0}, "l": []interface{}{"p", "q"}, "keep": "k", "gone": "g"}
	prov := Provenance{}
	markAll(dst, "values.yaml", prov, "")
	src := Values{"a": map[string]interface{}{"y": 3.0, "z": 4.0}, "l": []interface{}{"r"}, "gone": nil}
	mergeValues(dst, src, "custom.yaml", prov, "")
	want := Values{"a": map[string]interface{}{"x": 1.0, "y": 3.0, "z": 4.0}, "l": []interface{}{"r"}, "keep": "k"}
	if !reflect.DeepEqual(dst, want) {
		t.Errorf("got %s, want %s", asJSON(dst), asJSON(want))
	}
	for path, source := range map[string]string{"a.x": "values.yaml", "a.y": "custom.yaml", "l[0]": "custom.yaml", "keep": "values.yaml", "a.z.deeper": "custom.yaml"} {
		if got := prov.sourceOf(path); got != source {
			t.Errorf("sourceOf(%s) = %s, want %s", path, got, source)
		}
	}
}

func compileTestSchema(t *testing.T, text string) *Schema {
	t.Helper()
	var raw interface{}
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		t.Fatal(err)
	}
	s, err := compileSchema(raw, "#")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSchemaSubset(t *testing.T) {
	s := compileTestSchema(t, `{"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
		"name": {"type": "string", "pattern": "^[a-z]+$"},
		"level": {"type": "string", "enum": ["info", "debug"]},
		"grace": {"type": "integer", "minimum": 0, "maximum": 100},
		"flag": {"type": "boolean"},
		"list": {"type": "array", "items": {"type": "string"}},
		"labels": {"type": "object", "additionalProperties": {"type": "string"}},
		"either": {"type": ["integer", "string"], "pattern": "^[0-9]+%$"}}}`)
	rows := []struct {
		name   string
		values Values
		want   []string
	}{
		{"valid", Values{"name": "a", "level": "info", "grace": 30.0, "flag": true, "list": []interface{}{"x"},
			"labels": map[string]interface{}{"k": "v"}, "either": "10%"}, nil},
		{"integer from --set and from a file", Values{"name": "a", "grace": int64(3), "either": 2.0}, nil},
		{"wrong type", Values{"name": "a", "flag": "yes"}, []string{`f.yaml: flag: expected boolean, got string "yes"`}},
		{"fraction is not an integer", Values{"name": "a", "grace": 1.5}, []string{"f.yaml: grace: expected integer, got number 1.5"}},
		{"enum", Values{"name": "a", "level": "verbose"}, []string{`f.yaml: level: must be one of "info", "debug", got "verbose"`}},
		{"minimum", Values{"name": "a", "grace": -1.0}, []string{"f.yaml: grace: must be >= 0, got -1"}},
		{"maximum", Values{"name": "a", "grace": 101.0}, []string{"f.yaml: grace: must be <= 100, got 101"}},
		{"pattern", Values{"name": "A"}, []string{`f.yaml: name: must match ^[a-z]+$, got "A"`}},
		{"pattern on the string branch only", Values{"name": "a", "either": "ten"}, []string{`f.yaml: either: must match ^[0-9]+%$, got "ten"`}},
		{"items", Values{"name": "a", "list": []interface{}{"x", 1.0}}, []string{"f.yaml: list[1]: expected string, got integer 1"}},
		{"additionalProperties schema", Values{"name": "a", "labels": map[string]interface{}{"k": true}}, []string{"f.yaml: labels.k: expected string, got boolean true"}},
		{"unknown key", Values{"name": "a", "lvl": "x"}, []string{"f.yaml: lvl: unknown key (allowed here: either, flag, grace, labels, level, list, name)"}},
		{"required", Values{}, []string{"f.yaml: name: required key is missing"}},
	}
	for _, r := range rows {
		prov := Provenance{}
		markAll(r.values, "f.yaml", prov, "")
		var got []string
		for _, e := range validateValues(r.values, s, prov) {
			got = append(got, e.Error())
		}
		if !reflect.DeepEqual(got, r.want) {
			t.Errorf("%s: got %q, want %q", r.name, got, r.want)
		}
	}
	var raw interface{}
	_ = json.Unmarshal([]byte(`{"type": "object", "oneOf": []}`), &raw)
	if _, err := compileSchema(raw, "#"); err == nil || !strings.Contains(err.Error(), `"oneOf" is not supported`) {
		t.Errorf("an unsupported keyword must be refused, got %v", err)
	}
}

func renderFiles(t *testing.T, files map[string]string, values Values) (map[string]string, error) {
	t.Helper()
	var list []templateFile
	for name, content := range files {
		list = append(list, templateFile{name: name, content: content})
	}
	top := map[string]interface{}{
		"Values":  values,
		"Chart":   &ChartMeta{Name: "c", Version: "0.1.0", AppVersion: "9.9"},
		"Release": Release{Name: "r", Namespace: "ns", Service: "Helm", IsInstall: true, Revision: 1},
	}
	return renderTemplates(list, top)
}

func TestTemplateFunctions(t *testing.T) {
	files := map[string]string{
		"c/templates/_helpers.tpl": `{{- define "c.name" -}}{{ .Values.name | default "dflt" }}{{- end }}`,
		"c/templates/a.yaml": `name: {{ include "c.name" . }}
missing: "{{ .Values.nothing }}"
tpl: {{ tpl "{{ .Release.Namespace }}-{{ .Values.name }}" . }}
template: {{ .Template.Name }}
app: {{ .Chart.AppVersion }}
yaml:
{{ toYaml .Values.obj | indent 2 }}
json: {{ toJson .Values.obj }}
roundtrip: {{ (fromYaml "a: 1").a }}
big: {{ .Values.big }}`,
	}
	values := Values{"name": "x", "big": 1e6, "obj": map[string]interface{}{"z": []interface{}{"a", "b"}, "a": "yes"}}
	out, err := renderFiles(t, files, values)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out["c/templates/_helpers.tpl"]; ok {
		t.Errorf("a partial rendered output")
	}
	want := `name: x
missing: ""
tpl: ns-x
template: c/templates/a.yaml
app: 9.9
yaml:
  a: "yes"
  z:
  - a
  - b
json: {"a":"yes","z":["a","b"]}
roundtrip: 1
big: 1e+06`
	if got := out["c/templates/a.yaml"]; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestTemplateErrorsNameTheKey(t *testing.T) {
	rows := []struct {
		name, tpl, want string
	}{
		{"required at top level", `{{ required "x.y is required" .Values.missing }}`,
			"execution error at (c/templates/a.yaml:1:3): x.y is required"},
		{"required inside include", `{{ include "c.h" . }}`,
			"execution error at (c/templates/_h.tpl:1:23): inner.key is required"},
		{"fail", `{{ fail "pdb: not both" }}`, "execution error at (c/templates/a.yaml:1:3): pdb: not both"},
		{"empty string is missing", `{{ required "s is required" .Values.empty }}`, "s is required"},
	}
	for _, r := range rows {
		_, err := renderFiles(t, map[string]string{
			"c/templates/_h.tpl": `{{- define "c.h" -}}{{ required "inner.key is required" .Values.missing }}{{- end }}`,
			"c/templates/a.yaml": r.tpl,
		}, Values{"empty": ""})
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: error %v, want one containing %q", r.name, err, r.want)
		}
	}
}

func TestSplitManifestsOrder(t *testing.T) {
	docs, err := splitManifests(map[string]string{
		"c/templates/b.yaml": "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n---\n\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\n",
		"c/templates/a.yaml": "# only a comment\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: s}",
	})
	if err == nil {
		t.Fatalf("a document without kind must be an error, got %v", docs)
	}
	docs, err = splitManifests(map[string]string{
		"c/templates/b.yaml": "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n---\n\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\n",
		"c/templates/a.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: s}",
	})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, d := range docs {
		order = append(order, d.kind+"/"+d.name+"@"+d.source)
	}
	want := []string{"ServiceAccount/s@c/templates/a.yaml", "DaemonSet/d@c/templates/b.yaml", "Gateway/g@c/templates/b.yaml"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("got %v, want %v", order, want)
	}
	if _, err := splitManifests(map[string]string{"c/templates/x.yaml": "a: [\n"}); err == nil || !strings.Contains(err.Error(), "YAML parse error on c/templates/x.yaml") {
		t.Errorf("invalid YAML must name the file: %v", err)
	}
}

func TestRenderChartEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mini")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "templates"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte("apiVersion: v2\nname: mini\nversion: 0.1.0\nappVersion: 1.0.0\nkubeVersion: \">=1.26.0-0\"\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "values.yaml"), []byte("replicas: 1\nname: a\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "values.schema.json"), []byte(`{"type":"object","additionalProperties":false,"properties":{"replicas":{"type":"integer","minimum":0},"name":{"type":"string"}}}`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "templates", "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name }}\n  namespace: {{ .Release.Namespace }}\ndata:\n  replicas: {{ .Values.replicas | quote }}\n"), 0o644))
	extra := filepath.Join(t.TempDir(), "extra.yaml")
	must(os.WriteFile(extra, []byte("name: b\n"), 0o644))

	out, err := render(options{releaseName: "r", namespace: "ns", kubeVersion: "v1.30.0", chartDir: dir, valueFiles: []string{extra}, sets: []setFlag{{"replicas=3", true}}})
	must(err)
	want := "---\n# Source: mini/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: ns\ndata:\n  replicas: \"3\"\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	_, err = render(options{kubeVersion: "v1.30.0", chartDir: dir, sets: []setFlag{{"replicas=-1", true}}})
	if err == nil || !strings.Contains(err.Error(), "--set: replicas: must be >= 0, got -1") {
		t.Errorf("schema error: %v", err)
	}
	_, err = render(options{kubeVersion: "v1.25.0", chartDir: dir})
	if err == nil || !strings.Contains(err.Error(), "incompatible with Kubernetes v1.25.0") {
		t.Errorf("kubeVersion constraint: %v", err)
	}
}
