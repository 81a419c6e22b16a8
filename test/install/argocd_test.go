package install

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	configargocd "github.com/shopplatform/shop-operator/config/argocd"
	"github.com/shopplatform/shop-operator/internal/argocd"
)

// The argocd-cm patch, applied the way `kubectl patch --patch-file` does (a
// strategic merge patch), adds the health check and keeps what was there.
func TestArgoCDConfigMapPatch(t *testing.T) {
	ctx := context.Background()
	apply(t, namespace("argocd"))
	existing := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "argocd-cm", Namespace: "argocd"},
		Data:       map[string]string{"url": "https://argocd.example.com"},
	}
	if err := env.Client.Create(ctx, existing); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(configDir("argocd", "argocd-cm-patch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	patch, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Patch(ctx, existing, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	var got corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(existing), &got); err != nil {
		t.Fatal(err)
	}
	if got.Data["url"] != "https://argocd.example.com" {
		t.Errorf("the patch dropped existing settings: %v", got.Data)
	}
	if got.Data[argocd.HealthKey] != configargocd.HealthLua {
		t.Errorf("argocd-cm has no (or another) %s after the patch", argocd.HealthKey)
	}
}

// The overlay in docs/argocd.md puts the CRD in sync wave -1 and leaves the
// operator in wave 0.
func TestArgoCDSyncWaveOverlay(t *testing.T) {
	dir := t.TempDir()
	base, err := filepath.Rel(dir, configDir("default"))
	if err != nil {
		t.Fatal(err)
	}
	kustomization := `resources:
  - ` + base + `
patches:
  - target: {kind: CustomResourceDefinition, name: shops.commerce.shopplatform.io}
    patch: |-
      - op: add
        path: /metadata/annotations/argocd.argoproj.io~1sync-wave
        value: "-1"
`
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, u := range kustomize(t, dir) {
		wave, ok := u.GetAnnotations()["argocd.argoproj.io/sync-wave"]
		switch {
		case u.GetKind() == "CustomResourceDefinition" && wave != "-1":
			t.Errorf("CRD %s is in wave %q, want -1", u.GetName(), wave)
		case u.GetKind() != "CustomResourceDefinition" && ok:
			t.Errorf("%s %s is in wave %q, want the default 0", u.GetKind(), u.GetName(), wave)
		}
	}
}

// The example Application syncs a directory of this repository that
// kustomize builds into Shops only.
func TestArgoCDApplicationSource(t *testing.T) {
	raw, err := os.ReadFile(configDir("argocd", "application.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		Kind string
		Spec struct {
			Source struct{ Path string }
		}
	}
	if err := yaml.Unmarshal(raw, &app); err != nil {
		t.Fatal(err)
	}
	if app.Kind != "Application" || app.Spec.Source.Path == "" {
		t.Fatalf("not an Application with a source path: %+v", app)
	}
	objs := kustomize(t, filepath.Join(configDir(".."), app.Spec.Source.Path))
	for _, u := range objs {
		if u.GetKind() != "Shop" {
			t.Errorf("%s renders a %s", app.Spec.Source.Path, u.GetKind())
		}
	}
	if len(objs) == 0 {
		t.Errorf("%s renders nothing", app.Spec.Source.Path)
	}
}
