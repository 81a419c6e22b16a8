package argocd

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// Argo CD's tracking metadata on a Shop it syncs. Children that carried it
// would look like resources of the Application that are not in Git, and Argo
// CD would prune them (argo-cd issues 8683, 5792).
var argoMetadata = struct{ labels, annotations map[string]string }{
	labels: map[string]string{"app.kubernetes.io/instance": "shop-apps"},
	annotations: map[string]string{
		"argocd.argoproj.io/tracking-id":  "shop-apps:commerce.shopplatform.io/Shop:shop/demo",
		"argocd.argoproj.io/sync-wave":    "1",
		"argocd.argoproj.io/sync-options": "Prune=false",
	},
}

func TestChildrenNeverCarryArgoCDTrackingMetadata(t *testing.T) {
	specs := map[string]shopv1.ShopSpec{}
	for _, env := range rendertest.Environments {
		specs[string(env)] = shopv1.ShopSpec{Environment: env}
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "extra", "commerce_v1alpha1_shop_external.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var external shopv1.Shop
	if err := yaml.UnmarshalStrict(raw, &external); err != nil {
		t.Fatal(err)
	}
	specs["external sample"] = external.Spec

	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			shop := rendertest.Shop(spec)
			shop.Labels = argoMetadata.labels
			shop.Annotations = argoMetadata.annotations
			children, err := engine.Desired(rendertest.InputFor(shop, render.AllAPIs))
			if err != nil {
				t.Fatal(err)
			}
			if len(children) == 0 {
				t.Fatal("no children rendered")
			}
			for _, child := range children {
				for _, path := range argoKeys(child.Object, "") {
					t.Errorf("%s %s carries Argo CD metadata at %s", child.GetKind(), child.GetName(), path)
				}
			}
		})
	}
}

// argoKeys walks an object (including pod and claim templates) and returns
// the paths of Argo CD metadata: tracking keys in any metadata's labels or
// annotations, and the Shop's tracking values anywhere (e.g. copied into a
// selector). Selectors on the opentelemetry-operator's own
// app.kubernetes.io/instance label are not tracking metadata.
func argoKeys(v any, path string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		inMetadata := strings.HasSuffix(path, "metadata.labels") || strings.HasSuffix(path, "metadata.annotations")
		for k, child := range v {
			if _, ok := argoMetadata.labels[k]; inMetadata && (ok || strings.HasPrefix(k, "argocd.argoproj.io/")) {
				out = append(out, path+"."+k)
			}
			out = append(out, argoKeys(child, path+"."+k)...)
		}
	case []any:
		for i, child := range v {
			out = append(out, argoKeys(child, path+"["+strconv.Itoa(i)+"]")...)
		}
	case string:
		for _, tracking := range []string{argoMetadata.labels["app.kubernetes.io/instance"], argoMetadata.annotations["argocd.argoproj.io/tracking-id"]} {
			if strings.Contains(v, tracking) {
				out = append(out, path+" = "+v)
			}
		}
	}
	return out
}
