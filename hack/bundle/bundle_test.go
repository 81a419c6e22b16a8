package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"github.com/operator-framework/api/pkg/validation"
)

const root = "../.."

var bundleDir = filepath.Join(root, "bundle")

// TestBundleUpToDate regenerates the bundle from config/ and the Makefile's
// VERSION and fails when the committed bundle differs: run `make bundle`.
func TestBundleUpToDate(t *testing.T) {
	v, err := MakefileVersion(root)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Generate(Options{Root: root, Version: v})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(bundleDir, name))
		if err != nil {
			t.Errorf("%s: %v (run `make bundle`)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("bundle/%s is stale: run `make bundle` and commit", name)
		}
	}
	var committed []string
	for _, sub := range []string{"manifests", "metadata"} {
		entries, err := os.ReadDir(filepath.Join(bundleDir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			committed = append(committed, sub+"/"+e.Name())
		}
	}
	for _, name := range committed {
		if _, ok := files[name]; !ok {
			t.Errorf("bundle/%s is no longer generated: run `make bundle`", name)
		}
	}
}

// TestBundleValidates runs operator-framework/api's validators on the
// committed bundle: the default bundle validators (CSV, CRD, bundle) and the
// OperatorHub validator.
func TestBundleValidates(t *testing.T) {
	b, err := manifests.GetBundleFromDir(bundleDir)
	if err != nil {
		t.Fatal(err)
	}
	results := validation.DefaultBundleValidators.Validate(b.ObjectsToValidate()...)
	results = append(results, validation.OperatorHubValidator.Validate(b)...)
	checked := 0
	for _, r := range results {
		checked++
		for _, e := range r.Errors {
			t.Errorf("%s: %v", r.Name, e)
		}
		for _, w := range r.Warnings {
			t.Logf("warning: %s: %v", r.Name, w)
		}
	}
	if checked == 0 {
		t.Fatal("no validator ran")
	}
	if b.CSV == nil || len(b.V1CRDs) == 0 {
		t.Fatalf("bundle loaded without CSV or v1 CRD: %+v", b)
	}
}

// TestValidatorsCatchErrors proves the validators bite: a copy of the bundle
// with a broken CSV (an owned CRD the bundle lacks, a bad icon media type)
// must fail.
func TestValidatorsCatchErrors(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"manifests", "metadata"} {
		entries, err := os.ReadDir(filepath.Join(bundleDir, sub))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b := mustRead(t, filepath.Join(bundleDir, sub, e.Name()))
			if sub+"/"+e.Name() == csvFile {
				b = bytes.Replace(b, []byte("\n      kind: Shop\n"), []byte("\n      kind: Store\n"), 1)
				b = bytes.Replace(b, []byte("mediatype: image/svg+xml"), []byte("mediatype: image/bmp"), 1)
			}
			if err := os.WriteFile(filepath.Join(dir, sub, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := manifests.GetBundleFromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	results := validation.DefaultBundleValidators.Validate(b.ObjectsToValidate()...)
	results = append(results, validation.OperatorHubValidator.Validate(b)...)
	var errs []string
	for _, r := range results {
		for _, e := range r.Errors {
			errs = append(errs, e.Error())
		}
	}
	all := strings.Join(errs, "\n")
	for _, want := range []string{"Store", "image/bmp"} {
		if !strings.Contains(all, want) {
			t.Errorf("no validation error mentions %q; errors:\n%s", want, all)
		}
	}
}

// TestCSVContents checks what the validators leave to us: the operator's
// permissions, install mode, examples and the deployment.
func TestCSVContents(t *testing.T) {
	b, err := manifests.GetBundleFromDir(bundleDir)
	if err != nil {
		t.Fatal(err)
	}
	csv := b.CSV
	v, err := MakefileVersion(root)
	if err != nil {
		t.Fatal(err)
	}
	if csv.Name != "shop-operator.v"+v || csv.Spec.Version.String() != v {
		t.Errorf("CSV %s version %s, want shop-operator.v%s", csv.Name, csv.Spec.Version, v)
	}
	for _, m := range csv.Spec.InstallModes {
		if want := m.Type == operatorsv1alpha1.InstallModeTypeAllNamespaces; m.Supported != want {
			t.Errorf("install mode %s supported=%v", m.Type, m.Supported)
		}
	}
	if got := csv.Annotations["capabilities"]; got != "Seamless Upgrades" {
		t.Errorf("capabilities = %q", got)
	}

	var examples []map[string]any
	if err := json.Unmarshal([]byte(csv.Annotations["alm-examples"]), &examples); err != nil {
		t.Fatalf("alm-examples: %v", err)
	}
	envs := map[any]bool{}
	for _, e := range examples {
		if e["kind"] != "Shop" {
			t.Errorf("alm-example of kind %v", e["kind"])
		}
		envs[e["spec"].(map[string]any)["environment"]] = true
	}
	for _, env := range []string{"development", "testing", "production"} {
		if !envs[env] {
			t.Errorf("no alm-example for environment %s", env)
		}
	}

	strategy := csv.Spec.InstallStrategy.StrategySpec
	if len(strategy.DeploymentSpecs) != 1 {
		t.Fatalf("%d deployments, want 1", len(strategy.DeploymentSpecs))
	}
	pod := strategy.DeploymentSpecs[0].Spec.Template.Spec
	if got := pod.Containers[0].Image; got != "ghcr.io/shopplatform/shop-operator:"+v {
		t.Errorf("manager image %s", got)
	}
	if got := csv.Annotations["containerImage"]; got != pod.Containers[0].Image {
		t.Errorf("containerImage annotation %s, deployment %s", got, pod.Containers[0].Image)
	}
	sa := pod.ServiceAccountName
	has := func(perms []operatorsv1alpha1.StrategyDeploymentPermissions, group, resource, verb string) bool {
		for _, p := range perms {
			if p.ServiceAccountName != sa {
				t.Errorf("permissions for %s, the deployment runs as %s", p.ServiceAccountName, sa)
			}
			for _, r := range p.Rules {
				if contains(r.APIGroups, group) && contains(r.Resources, resource) && contains(r.Verbs, verb) {
					return true
				}
			}
		}
		return false
	}
	if !has(strategy.Permissions, "coordination.k8s.io", "leases", "create") {
		t.Error("permissions: no leader-election lease rule")
	}
	for _, want := range [][3]string{
		{"commerce.shopplatform.io", "shops", "watch"},
		{"commerce.shopplatform.io", "shops/status", "patch"},
		{"apps", "deployments", "patch"},
		{"authentication.k8s.io", "tokenreviews", "create"}, // metrics auth
	} {
		if !has(strategy.ClusterPermissions, want[0], want[1], want[2]) {
			t.Errorf("clusterPermissions: no %s %s/%s", want[2], want[0], want[1])
		}
	}
	owned := csv.Spec.CustomResourceDefinitions.Owned
	if len(owned) != 1 || owned[0].Name != b.V1CRDs[0].Name || owned[0].Version != "v1alpha1" {
		t.Errorf("owned CRDs %+v, bundle CRD %s", owned, b.V1CRDs[0].Name)
	}
	for _, f := range []string{"minKubeVersion", "description", "icon", "maintainers", "links", "keywords", "provider"} {
		if !strings.Contains(string(mustRead(t, filepath.Join(bundleDir, csvFile))), "\n  "+f+":") {
			t.Errorf("CSV has no spec.%s", f)
		}
	}
}

// TestAnnotationsMatchDockerfile: OLM reads the labels of the bundle image
// and annotations.yaml; they must agree.
func TestAnnotationsMatchDockerfile(t *testing.T) {
	df := string(mustRead(t, filepath.Join(bundleDir, "bundle.Dockerfile")))
	for k, v := range annotations() {
		if !strings.Contains(df, "LABEL "+k+"="+v+"\n") {
			t.Errorf("bundle.Dockerfile has no LABEL %s=%s", k, v)
		}
		if !strings.Contains(string(mustRead(t, filepath.Join(bundleDir, annotationFile))), k+": "+v) {
			t.Errorf("annotations.yaml has no %s: %s", k, v)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s || x == "*" {
			return true
		}
	}
	return false
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
