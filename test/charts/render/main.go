// Command render renders a Helm chart the way `helm template` does, with no helm binary and no cluster:
//
//	render [--name NAME] [--namespace NS] [-f values.yaml]... [--set k=v]... [--set-string k=v]...
//	       [--kube-version v1.30.0] CHART_DIR
//
// Steps, in Helm's order: read Chart.yaml (apiVersion v2) and check its kubeVersion constraint; merge
// values.yaml, the -f files and the --set flags; validate the merged values against values.schema.json
// (errors name the source and the key); execute the templates; split the output into documents, parse each
// (invalid YAML is an error naming the file), sort them in Helm's install order and print them with
// `# Source: <chart>/templates/<file>` comments.
//
// Exit status: 0 rendered, 1 any error (message on stderr), 2 bad command line.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver"
	yaml2 "gopkg.in/yaml.v2"
)

type options struct {
	releaseName, namespace, kubeVersion string
	valueFiles                          []string
	sets                                []setFlag
	chartDir                            string
}

type setFlag struct {
	text  string
	typed bool // --set (typed) or --set-string
}

func parseArgs(args []string) (options, error) {
	o := options{releaseName: "release-name", namespace: "default", kubeVersion: "v1.30.0"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		flag, val, hasVal := strings.Cut(a, "=")
		takesValue := map[string]bool{"--name": true, "--namespace": true, "-n": true, "-f": true,
			"--values": true, "--set": true, "--set-string": true, "--kube-version": true}
		if !takesValue[flag] {
			if strings.HasPrefix(a, "-") {
				return o, fmt.Errorf("unknown flag %s", a)
			}
			if o.chartDir != "" {
				return o, fmt.Errorf("one chart directory expected, got %s and %s", o.chartDir, a)
			}
			o.chartDir = a
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return o, fmt.Errorf("flag %s needs a value", flag)
			}
			i++
			val = args[i]
		}
		switch flag {
		case "--name":
			o.releaseName = val
		case "--namespace", "-n":
			o.namespace = val
		case "-f", "--values":
			o.valueFiles = append(o.valueFiles, val)
		case "--set":
			o.sets = append(o.sets, setFlag{val, true})
		case "--set-string":
			o.sets = append(o.sets, setFlag{val, false})
		case "--kube-version":
			o.kubeVersion = val
		}
	}
	if o.chartDir == "" {
		return o, fmt.Errorf("no chart directory given")
	}
	return o, nil
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "render: %v\nusage: render [--name N] [--namespace NS] [-f values.yaml]... [--set k=v]... [--set-string k=v]... [--kube-version vX.Y.Z] CHART_DIR\n", err)
		os.Exit(2)
	}
	out, err := render(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	fmt.Print(out)
}

func render(o options) (string, error) {
	meta, err := loadChartMeta(o.chartDir)
	if err != nil {
		return "", err
	}
	kube, err := parseKubeVersion(o.kubeVersion)
	if err != nil {
		return "", err
	}
	if meta.KubeVersion != "" {
		c, err := semver.NewConstraint(meta.KubeVersion)
		if err != nil {
			return "", fmt.Errorf("Chart.yaml: kubeVersion %q: %v", meta.KubeVersion, err)
		}
		v, _ := semver.NewVersion(kube.Version)
		if !c.Check(v) {
			return "", fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", meta.KubeVersion, kube.Version)
		}
	}

	values, err := loadValuesFile(filepath.Join(o.chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	prov := Provenance{}
	markAll(values, "values.yaml", prov, "")
	for _, f := range o.valueFiles {
		v, err := loadValuesFile(f)
		if err != nil {
			return "", err
		}
		mergeValues(values, v, f, prov, "")
	}
	for _, s := range o.sets {
		v, err := parseSet(s.text, s.typed)
		if err != nil {
			return "", err
		}
		name := "--set"
		if !s.typed {
			name = "--set-string"
		}
		mergeValues(values, v, name, prov, "")
	}

	schemaPath := filepath.Join(o.chartDir, "values.schema.json")
	if _, statErr := os.Stat(schemaPath); statErr == nil {
		schema, err := loadSchema(schemaPath)
		if err != nil {
			return "", err
		}
		if errs := validateValues(values, schema, prov); len(errs) > 0 {
			lines := make([]string, len(errs))
			for i, e := range errs {
				lines[i] = "- " + e.Error()
			}
			return "", fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n%s",
				meta.Name, strings.Join(lines, "\n"))
		}
	}

	files, err := readTemplates(o.chartDir, meta.Name)
	if err != nil {
		return "", err
	}
	top := map[string]interface{}{
		"Values": values,
		"Chart":  meta,
		"Release": Release{Name: o.releaseName, Namespace: o.namespace, Service: "Helm",
			IsInstall: true, IsUpgrade: false, Revision: 1},
		"Capabilities": Capabilities{KubeVersion: kube, APIVersions: builtinAPIVersions},
		"Files":        map[string]interface{}{},
	}
	rendered, err := renderTemplates(files, top)
	if err != nil {
		return "", err
	}
	docs, err := splitManifests(rendered)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, d := range docs {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", d.source, d.content)
	}
	return b.String(), nil
}

func loadChartMeta(dir string) (*ChartMeta, error) {
	data, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("reading chart: %v", err)
	}
	var m ChartMeta
	if err := yaml2.UnmarshalStrict(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, "Chart.yaml"), err)
	}
	switch {
	case m.APIVersion != "v2":
		return nil, fmt.Errorf("Chart.yaml: apiVersion must be v2, got %q", m.APIVersion)
	case m.Name == "":
		return nil, fmt.Errorf("Chart.yaml: name is required")
	case m.Name != filepath.Base(filepath.Clean(dir)):
		return nil, fmt.Errorf("Chart.yaml: name %q differs from the chart directory %q", m.Name, filepath.Base(dir))
	}
	if _, err := semver.StrictNewVersion(m.Version); err != nil {
		return nil, fmt.Errorf("Chart.yaml: version %q is not SemVer 2: %v", m.Version, err)
	}
	return &m, nil
}

func parseKubeVersion(text string) (KubeVersion, error) {
	v, err := semver.NewVersion(text)
	if err != nil {
		return KubeVersion{}, fmt.Errorf("--kube-version %q: %v", text, err)
	}
	full := "v" + v.String()
	return KubeVersion{Version: full, GitVersion: full, Major: fmt.Sprint(v.Major()), Minor: fmt.Sprint(v.Minor())}, nil
}

// builtinAPIVersions: what .Capabilities.APIVersions.Has answers true for without a cluster.
var builtinAPIVersions = APIVersions{
	"v1", "apps/v1", "autoscaling/v2", "policy/v1", "rbac.authorization.k8s.io/v1",
	"apps/v1/DaemonSet", "apps/v1/Deployment", "autoscaling/v2/HorizontalPodAutoscaler",
	"policy/v1/PodDisruptionBudget",
}
