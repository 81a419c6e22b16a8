// Package install proves that what users apply installs: the kustomize
// overlays under config/ build with kubectl's kustomize and every object is
// accepted by a real API server (server-side dry run, CRDs first), and so is
// every sample Shop.
package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/shopplatform/shop-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start(testenv.Options{ThirdPartyCRDs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// fieldOwner is the field manager of `kubectl apply --server-side`.
const fieldOwner = "kubectl"

// kustomize runs `kubectl kustomize dir` and decodes every object.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed: cannot run kustomize")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	return decode(t, out)
}

func decode(t *testing.T, out []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

func configDir(elem ...string) string {
	return filepath.Join(append([]string{testenv.RepoRoot(), "config"}, elem...)...)
}

// install applies objs as `kubectl apply --server-side` would, but only the
// CRDs and Namespaces for real (waiting for each CRD to be served): every
// other object is a server-side dry run, so the API server validates it
// against its schema, CEL rules and admission without anything running.
func install(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	var rest []*unstructured.Unstructured
	for _, u := range objs {
		switch u.GetKind() {
		case "CustomResourceDefinition", "Namespace":
			apply(t, u)
			if u.GetKind() == "CustomResourceDefinition" {
				waitEstablished(t, u.GetName())
			}
		default:
			rest = append(rest, u)
		}
	}
	for _, u := range rest {
		if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldOwner), client.ForceOwnership, client.DryRunAll); err != nil {
			t.Errorf("%s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
}

func apply(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	if err := env.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

func namespace(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}
}

func waitEstablished(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	m := map[string]int{}
	for _, u := range objs {
		m[u.GetKind()]++
	}
	return m
}

// config/default is what `make deploy` and `make build-installer` install.
func TestDefaultInstalls(t *testing.T) {
	objs := kustomize(t, configDir("default"))
	got := kinds(objs)
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"} {
		if got[kind] == 0 {
			t.Errorf("config/default renders no %s (got %v)", kind, got)
		}
	}
	install(t, objs)
}

// config/prometheus and config/network-policy, wired into config/default the
// way docs/install.md says: a copy of config/default's kustomization with the
// two directories added to its resources.
func TestOptionalComponentsInstall(t *testing.T) {
	raw, err := os.ReadFile(configDir("default", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]any
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	// kustomize refuses absolute paths: point at config/ relative to the
	// temporary directory.
	dir := t.TempDir()
	var resources []any
	for _, r := range append(k["resources"].([]any), "../prometheus", "../network-policy") {
		rel, err := filepath.Rel(dir, filepath.Join(configDir("default"), r.(string)))
		if err != nil {
			t.Fatal(err)
		}
		resources = append(resources, rel)
	}
	k["resources"] = resources
	out, err := yaml.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	objs := kustomize(t, dir)
	install(t, objs)

	// The ServiceMonitor and the NetworkPolicy must select what the
	// manager's Service and pods actually carry after kustomize.
	var monitor, policy, service, deployment *unstructured.Unstructured
	for _, u := range objs {
		switch u.GetKind() {
		case "ServiceMonitor":
			monitor = u
		case "NetworkPolicy":
			policy = u
		case "Service":
			service = u
		case "Deployment":
			deployment = u
		}
	}
	if monitor == nil || policy == nil || service == nil || deployment == nil {
		t.Fatalf("missing objects: ServiceMonitor %v, NetworkPolicy %v, Service %v, Deployment %v", monitor != nil, policy != nil, service != nil, deployment != nil)
	}
	for _, u := range []*unstructured.Unstructured{monitor, policy} {
		if u.GetNamespace() != service.GetNamespace() {
			t.Errorf("%s is in namespace %q, the operator in %q", u.GetKind(), u.GetNamespace(), service.GetNamespace())
		}
	}
	sel, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	assertSubset(t, "ServiceMonitor selector", sel, service.GetLabels())
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	ports, _, _ := unstructured.NestedSlice(service.Object, "spec", "ports")
	portName := endpoints[0].(map[string]any)["port"]
	found := false
	for _, p := range ports {
		found = found || p.(map[string]any)["name"] == portName
	}
	if !found {
		t.Errorf("ServiceMonitor scrapes port %v, the Service has %v", portName, ports)
	}
	podSel, _, _ := unstructured.NestedStringMap(policy.Object, "spec", "podSelector", "matchLabels")
	podLabels, _, _ := unstructured.NestedStringMap(deployment.Object, "spec", "template", "metadata", "labels")
	assertSubset(t, "NetworkPolicy podSelector", podSel, podLabels)
	args, _, _ := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	if !strings.Contains(fmt.Sprint(args), "--metrics-bind-address=:8443") {
		t.Errorf("the NetworkPolicy opens 8443, the manager does not bind metrics there: %v", args)
	}
}

func assertSubset(t *testing.T, what string, sel, labels map[string]string) {
	t.Helper()
	if len(sel) == 0 {
		t.Errorf("%s is empty", what)
	}
	for k, v := range sel {
		if labels[k] != v {
			t.Errorf("%s %s=%s does not match labels %v", what, k, v, labels)
		}
	}
}

// Every sample Shop (the demo's and the extra ones) is accepted, with the
// third-party CRDs installed.
func TestSamplesApply(t *testing.T) {
	for _, dir := range []string{"samples", filepath.Join("samples", "extra")} {
		t.Run(dir, func(t *testing.T) {
			objs := kustomize(t, configDir(dir))
			if len(objs) == 0 {
				t.Fatalf("config/%s renders nothing", dir)
			}
			apply(t, namespace("samples"))
			for _, u := range objs {
				if u.GetKind() != "Shop" {
					t.Errorf("config/%s renders a %s", dir, u.GetKind())
				}
				u.SetNamespace("samples")
			}
			install(t, objs)
		})
	}
}

// Every *.yaml under config/samples is listed in its directory's
// kustomization, so `kubectl apply -k` and `shopctl demo` agree.
func TestSamplesListed(t *testing.T) {
	for _, dir := range []string{"samples", filepath.Join("samples", "extra")} {
		files, err := filepath.Glob(filepath.Join(configDir(dir), "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(configDir(dir), "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var k struct{ Resources []string }
		if err := yaml.Unmarshal(raw, &k); err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{}
		for _, r := range k.Resources {
			listed[r] = true
		}
		for _, f := range files {
			if base := filepath.Base(f); base != "kustomization.yaml" && !listed[base] {
				t.Errorf("config/%s/%s is not listed in config/%s/kustomization.yaml", dir, base, dir)
			}
		}
	}
}
