package localcluster

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The pieces that need no binaries; test/e2e starts the real cluster.

func TestCheckBinDirNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "etcd"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := checkBinDir(dir)
	if err == nil {
		t.Fatal("want an error for an incomplete binary directory")
	}
	for _, want := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok,", "kwok-stages/*.yaml", "hack/kube-binaries.sh cluster"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "etcd") {
		t.Errorf("error %q lists etcd, which is present", err)
	}
}

func TestWriteStagesKeepsStagesAndWidensStorageClasses(t *testing.T) {
	bin := t.TempDir()
	stages := filepath.Join(bin, "kwok-stages")
	if err := os.MkdirAll(stages, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"pvc-provision.yaml": "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: pvc-provision\nspec:\n  selector:\n    matchExpressions:\n    - cel:\n        expression: >-\n          self.spec.storageClassName == 'kwok-volume'\n",
		"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n",
		"two.yaml":           "kind: Stage\nmetadata:\n  name: a\n---\nkind: StorageClass\nmetadata:\n  name: x\n---\nkind: Stage\nmetadata:\n  name: b\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(stages, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &Cluster{opts: Options{BinDir: bin, Log: io.Discard, StorageClasses: []string{"standard"}}, dir: t.TempDir()}
	path, err := c.writeStages()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if n := strings.Count(got, "kind: Stage\n"); n != 3 {
		t.Errorf("want 3 Stage documents, got %d:\n%s", n, got)
	}
	for _, unwanted := range []string{"Kustomization", "StorageClass", "== 'kwok-volume'"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("output contains %q:\n%s", unwanted, got)
		}
	}
	if !strings.Contains(got, "self.spec.storageClassName in ['kwok-volume', 'standard']") {
		t.Errorf("class selector not widened:\n%s", got)
	}
}

func TestTailFileKeepsTheLastLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat("x", i%7) + "line\n")
	}
	b.WriteString("the last one\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := tailFile(path, 3)
	if lines := strings.Split(got, "\n"); len(lines) != 3 || lines[2] != "the last one" {
		t.Errorf("tail = %q", got)
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v", ports)
		}
		seen[p] = true
	}
}
