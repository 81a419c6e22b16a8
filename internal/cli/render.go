package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/scheme"
	"github.com/shopplatform/shop-operator/internal/secrets"
	"github.com/shopplatform/shop-operator/internal/status"
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
	var fromCluster bool
	var conn clusterFlags
	cmd := &cobra.Command{
		Use:   "render -f SHOP.yaml",
		Short: "Print the children the operator would apply for the Shops in the files",
		Long: `render validates the Shops in the files exactly as the API server does, then prints,
as multi-document YAML, every child the operator would apply for each of them: the
same code path as the controller, sorted and byte-for-byte stable. Generated secret
values (database passwords, signing keys) are printed as "<generated>", never real.

With --cluster it renders each Shop for the cluster's state (KUBECONFIG), exactly as
the operator would apply it there: the optional APIs the cluster serves (unless --apis
is given), the Secrets the Shop references (an exporter whose Secret is missing is left
out, as the operator does; what is missing is noted on stderr), the generated Secrets'
values in what depends on them (checksums; the values themselves are still printed as
"<generated>") and the stored Shop's UID in owner references.`,
		Example: `  $CMD render -f config/samples/commerce_v1alpha1_shop_production.yaml
  kustomize build overlays/prod | $CMD render -f - --namespace shop
  $CMD render -f shop.yaml --apis none      # a cluster without Istio, prometheus-operator, otel
  $CMD render -f shop.yaml --environment production   # the same Shop under another profile
  $CMD render -f shop.yaml --cluster        # what the operator applies on the current cluster`,
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
			var state *clusterState
			if fromCluster {
				if state, err = conn.state(cmd.Context()); err != nil {
					return err
				}
				if !cmd.Flags().Changed("apis") {
					sel = state.apis
				}
			}
			return renderShops(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), shops, sel, state)
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "files with Shops (YAML or JSON, several documents each); - reads stdin")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of Shops whose metadata has none")
	cmd.Flags().StringVar(&environment, "environment", "", "render every Shop with this spec.environment instead of its own (development, testing, production)")
	cmd.Flags().StringSliceVar(&apis, "apis", []string{"istio", "prometheus", "alertmanager", "otel"},
		"optional APIs the target cluster serves: istio, prometheus, alertmanager, otel; all or none (with --cluster: those it serves)")
	cmd.Flags().BoolVar(&fromCluster, "cluster", false, "render for the cluster's state: its optional APIs, the Secrets the Shops reference and the generated ones")
	conn.addConnection(cmd.Flags())
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

// clusterState is the cluster a Shop is rendered for (render --cluster).
type clusterState struct {
	client client.Reader
	apis   render.APIs
}

// state connects to the cluster and detects its optional APIs.
func (f *clusterFlags) state(ctx context.Context) (*clusterState, error) {
	cfg, _, err := f.restConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	apis, _, err := engine.DetectAPIs(ctx, dc)
	if err != nil {
		return nil, fmt.Errorf("discovering optional APIs: %w", err)
	}
	return &clusterState{client: c, apis: apis}, nil
}

// renderShops writes the children of every Shop, in input order, each Shop's
// children in the engine's order. With a cluster, what is missing there is
// noted on stderr.
func renderShops(ctx context.Context, w, stderr io.Writer, shops []*unstructured.Unstructured, apis render.APIs, state *clusterState) error {
	for _, u := range shops {
		objs, problems, err := Children(ctx, u, apis, state)
		if err != nil {
			return fmt.Errorf("shop/%s: %w", u.GetName(), err)
		}
		for _, p := range problems {
			fmt.Fprintf(stderr, "shop/%s: %s\n", u.GetName(), p)
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

// Children renders a validated Shop as the controller does, through
// engine.Prepare and engine.Desired. Without a cluster (state nil) the
// generated values are placeholders, every referenced Secret is taken to be
// there, and the Shop gets a stable fake UID, so that owner references are
// the same on every run. With one, the Shop is rendered for its state and
// gets the stored Shop's UID; the generated Secrets' values are replaced by
// placeholders once rendered. The problems are those of the references.
func Children(ctx context.Context, u *unstructured.Unstructured, apis render.APIs, state *clusterState) ([]*unstructured.Unstructured, status.Problems, error) {
	shop := &shopv1.Shop{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, shop); err != nil {
		return nil, nil, err
	}
	var c client.Reader
	if state != nil {
		c = state.client
		if shop.UID == "" {
			stored := &shopv1.Shop{}
			err := c.Get(ctx, client.ObjectKeyFromObject(shop), stored)
			if client.IgnoreNotFound(err) != nil {
				return nil, nil, fmt.Errorf("reading the stored Shop: %w", err)
			}
			shop.UID = stored.UID
		}
	}
	if shop.UID == "" {
		shop.UID = FakeUID(shop.Namespace, shop.Name)
	}
	if shop.Generation == 0 {
		shop.Generation = 1
	}
	p, err := engine.Prepare(ctx, shop, apis, c, engine.Placeholders)
	if err != nil {
		return nil, nil, err
	}
	objs, err := engine.Desired(p.Input)
	if err != nil {
		return nil, nil, err
	}
	hideGenerated(p.Input, objs)
	return objs, p.Problems, nil
}

// hideGenerated replaces every generated value in the rendered Secrets by
// the placeholder: with a cluster the builders saw the real ones (so the
// checksums that roll pods are the operator's), shopctl never prints them.
// What a builder writes itself (a database's host, its user) stays.
func hideGenerated(in render.Input, objs []*unstructured.Unstructured) {
	generated := secrets.Placeholders(secrets.For(in))
	placeholder := base64.StdEncoding.EncodeToString([]byte(secrets.Placeholder))
	for _, u := range objs {
		keys, ok := generated[u.GetName()]
		if u.GetKind() != "Secret" || !ok {
			continue
		}
		data, _, _ := unstructured.NestedMap(u.Object, "data")
		for k := range data {
			if _, gen := keys[k]; gen {
				data[k] = placeholder
			}
		}
		if data != nil {
			_ = unstructured.SetNestedMap(u.Object, data, "data")
		}
	}
}

// FakeUID is a stable UID for an offline Shop: a name-based (SHA-1) UUID of
// its namespace and name.
func FakeUID(namespace, name string) types.UID {
	return types.UID(uuid.NewSHA1(uuid.NameSpaceURL, []byte("shop.commerce.shopplatform.io/"+namespace+"/"+name)).String())
}
