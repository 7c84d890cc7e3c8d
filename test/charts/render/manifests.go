package main

// Splitting rendered files into documents and ordering them as `helm template` prints them.

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	yaml2 "gopkg.in/yaml.v2"
)

// installOrder is Helm's releaseutil.InstallOrder; other kinds (Gateway, ...) come after these.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
	"ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
	"Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
}

// manifestSep is Helm's releaseutil separator: a line starting with ---.
var manifestSep = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

type manifest struct {
	source, content, kind, name string
}

// splitManifests parses every document (an invalid one is an error naming its file), drops empty ones,
// and sorts: files by name, documents in file order, then stably by install order.
func splitManifests(rendered map[string]string) ([]manifest, error) {
	names := make([]string, 0, len(rendered))
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []manifest
	for _, n := range names {
		for _, part := range manifestSep.Split(rendered[n], -1) {
			content := strings.TrimSpace(part)
			if content == "" {
				continue
			}
			var head struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Metadata   struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
			}
			if err := yaml2.Unmarshal([]byte(content), &head); err != nil {
				return nil, fmt.Errorf("YAML parse error on %s: %v\n--- document ---\n%s", n, err, numbered(content))
			}
			if head.APIVersion == "" || head.Kind == "" {
				return nil, fmt.Errorf("%s: a document without apiVersion or kind:\n%s", n, numbered(content))
			}
			out = append(out, manifest{source: n, content: content, kind: head.Kind, name: head.Metadata.Name})
		}
	}
	rank := func(kind string) int {
		for i, k := range installOrder {
			if k == kind {
				return i
			}
		}
		return len(installOrder)
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].kind) < rank(out[j].kind) })
	return out, nil
}

func numbered(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = fmt.Sprintf("%4d | %s", i+1, l)
	}
	return strings.Join(lines, "\n")
}
