package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/profile"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// apiNames are the --apis values, each an optional API of render.APIs.
var apiNames = map[string]func(*render.APIs) *bool{
	"istio":        func(a *render.APIs) *bool { return &a.Istio },
	"prometheus":   func(a *render.APIs) *bool { return &a.PrometheusOperator },
	"alertmanager": func(a *render.APIs) *bool { return &a.AlertmanagerConfig },
	"otel":         func(a *render.APIs) *bool { return &a.OpenTelemetryOperator },
}

func newRenderCmd() *cobra.Command {
	var files []string
	var namespace, environment string
	var apis []string
	cmd := &cobra.Command{
		Use:   "render -f SHOP.yaml",
		Short: "Print the children the operator would apply for the Shops in the files",
		Long: `render validates the Shops in the files exactly as the API server does, then prints,
as multi-document YAML, every child the operator would apply for each of them: the
same code path as the controller, sorted and byte-for-byte stable. Generated secret
values (database passwords, signing keys) are printed as "<generated>", never real.`,
		Example: `  $CMD render -f config/samples/commerce_v1alpha1_shop_production.yaml
  kustomize build overlays/prod | $CMD render -f - --namespace shop
  $CMD render -f shop.yaml --apis none      # a cluster without Istio, prometheus-operator, otel
  $CMD render -f shop.yaml --environment production   # the same Shop under another profile`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sel, err := parseAPIs(apis)
			if err != nil {
				return err
			}
			docs, err := readShops(files, cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if environment != "" {
				for _, d := range docs {
					if err := unstructured.SetNestedField(d.obj.Object, environment, "spec", "environment"); err != nil {
						return fmt.Errorf("%s: %w", d.source, err)
					}
				}
			}
			shops, err := validateShops(docs, nil, namespace, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return renderShops(cmd.OutOrStdout(), shops, sel)
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "files with Shops (YAML or JSON, several documents each); - reads stdin")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of Shops whose metadata has none")
	cmd.Flags().StringVar(&environment, "environment", "", "render every Shop with this spec.environment instead of its own (development, testing, production)")
	cmd.Flags().StringSliceVar(&apis, "apis", []string{"istio", "prometheus", "alertmanager", "otel"},
		"optional APIs the target cluster serves: istio, prometheus, alertmanager, otel; all or none")
	return cmd
}

func parseAPIs(names []string) (render.APIs, error) {
	var apis render.APIs
	for _, n := range names {
		switch n = strings.ToLower(strings.TrimSpace(n)); n {
		case "all":
			apis = render.AllAPIs
		case "none", "":
		default:
			flag, ok := apiNames[n]
			if !ok {
				return apis, fmt.Errorf("unknown API %q in --apis: use istio, prometheus, alertmanager, otel, all or none", n)
			}
			*flag(&apis) = true
		}
	}
	return apis, nil
}

// renderShops writes the children of every Shop, in input order, each Shop's
// children in the engine's order.
func renderShops(w io.Writer, shops []*unstructured.Unstructured, apis render.APIs) error {
	for _, u := range shops {
		objs, err := Children(u, apis)
		if err != nil {
			return fmt.Errorf("shop/%s: %w", u.GetName(), err)
		}
		for _, obj := range objs {
			data, err := yaml.Marshal(obj.Object)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "---\n%s", data); err != nil {
				return err
			}
		}
	}
	return nil
}

// Children renders a validated Shop as the controller does: the profile
// resolved under its spec, the engine's builders, placeholders for the
// values the controller generates. The Shop gets a stable fake UID so that
// owner references are the same on every run.
func Children(u *unstructured.Unstructured, apis render.APIs) ([]*unstructured.Unstructured, error) {
	shop := &shopv1.Shop{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, shop); err != nil {
		return nil, err
	}
	if shop.UID == "" {
		shop.UID = FakeUID(shop.Namespace, shop.Name)
	}
	if shop.Generation == 0 {
		shop.Generation = 1
	}
	in := render.Input{Shop: shop, Spec: profile.Resolve(shop.Spec), APIs: apis}
	in.Generated = secrets.Placeholders(secrets.For(in))
	return engine.Desired(in)
}

// FakeUID is a stable UID for an offline Shop: a name-based (SHA-1) UUID of
// its namespace and name.
func FakeUID(namespace, name string) types.UID {
	return types.UID(uuid.NewSHA1(uuid.NameSpaceURL, []byte("shop.commerce.shopplatform.io/"+namespace+"/"+name)).String())
}
