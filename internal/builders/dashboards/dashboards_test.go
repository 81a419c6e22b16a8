package dashboards_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/dashboards"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/golden"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	code := func() int {
		var err error
		env, err = testenv.Start(testenv.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = env.Stop() }()
		return m.Run()
	}()
	os.Exit(code)
}

func configMaps(t *testing.T, in render.Input) []*corev1.ConfigMap {
	t.Helper()
	objs, err := dashboards.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	var out []*corev1.ConfigMap
	for _, o := range objs {
		out = append(out, o.(*corev1.ConfigMap))
	}
	return out
}

func toUnstructured(t *testing.T, cm *corev1.ConfigMap) *unstructured.Unstructured {
	t.Helper()
	cm = cm.DeepCopy()
	cm.APIVersion, cm.Kind = "v1", "ConfigMap"
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cm)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u
}

func TestGolden(t *testing.T) {
	for _, e := range rendertest.Environments {
		t.Run(string(e), func(t *testing.T) {
			var objs []*unstructured.Unstructured
			for _, cm := range configMaps(t, rendertest.Input(shopv1.ShopSpec{Environment: e})) {
				objs = append(objs, toUnstructured(t, cm))
			}
			golden.Assert(t, string(e)+".yaml", golden.YAML(t, objs))
		})
	}
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, e := range rendertest.Environments {
		t.Run(string(e), func(t *testing.T) {
			for _, cm := range configMaps(t, rendertest.Input(shopv1.ShopSpec{Environment: e})) {
				u := toUnstructured(t, cm)
				if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(render.ManagedBy), client.ForceOwnership, client.DryRunAll); err != nil {
					t.Errorf("%s: %v", cm.Name, err)
				}
			}
		})
	}
}

func TestSwitchesAndLabels(t *testing.T) {
	dev := configMaps(t, rendertest.Input(shopv1.ShopSpec{}))
	prod := configMaps(t, rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production}))
	if len(dev) != len(prod)+1 {
		t.Errorf("development has %d dashboards, production %d: want the debug dashboard in development only", len(dev), len(prod))
	}
	for _, cm := range dev {
		if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations[dashboards.FolderAnnotation] != "Shop" {
			t.Errorf("%s: labels %v annotations %v", cm.Name, cm.Labels, cm.Annotations)
		}
	}
	spec := shopv1.ShopSpec{}
	spec.Observability.Grafana.Labels = map[string]string{"team": "shop"}
	spec.Observability.Grafana.Folder = "Commerce"
	for _, cm := range configMaps(t, rendertest.Input(spec)) {
		if cm.Labels["team"] != "shop" || cm.Annotations[dashboards.FolderAnnotation] != "Commerce" {
			t.Errorf("%s: labels %v annotations %v", cm.Name, cm.Labels, cm.Annotations)
		}
	}
	spec.Observability.Grafana.Dashboards = new(false)
	if got := configMaps(t, rendertest.Input(spec)); len(got) != 0 {
		t.Errorf("dashboards off renders %d ConfigMaps", len(got))
	}
}

// grafanaVars stand in for Grafana's variables so that a query parses as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "${service:regex}", ".*", "${trace_id}", "")

var logQLSelector = regexp.MustCompile(`^\{\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"]*"(\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"]*")*\s*\}`)

// TestQueries parses every PromQL query with Prometheus' parser, checks it
// names only metrics of the metric list, and checks the LogQL queries' shape.
func TestQueries(t *testing.T) {
	known := monitoring.Metrics()
	p := parser.NewParser(parser.Options{})
	for _, e := range rendertest.Environments {
		in := rendertest.Input(shopv1.ShopSpec{Environment: e})
		for _, cm := range configMaps(t, in) {
			for file, body := range cm.Data {
				var dash map[string]any
				if err := json.Unmarshal([]byte(body), &dash); err != nil {
					t.Fatalf("%s/%s: %v", cm.Name, file, err)
				}
				vars := map[string]bool{}
				for _, v := range dash["templating"].(map[string]any)["list"].([]any) {
					vars[v.(map[string]any)["name"].(string)] = true
				}
				panels := 0
				walkPanels(dash, func(panel map[string]any) {
					panels++
					title := fmt.Sprintf("%s %s %q", e, file, panel["title"])
					targets, _ := panel["targets"].([]any)
					if len(targets) == 0 {
						t.Errorf("%s has no query", title)
					}
					for _, tg := range targets {
						target := tg.(map[string]any)
						ds := target["datasource"].(map[string]any)
						uid := ds["uid"].(string)
						if !strings.HasPrefix(uid, "${") || !vars[strings.Trim(uid, "${}")] {
							t.Errorf("%s: datasource %q is not a dashboard variable", title, uid)
						}
						expr, _ := target["expr"].(string)
						switch ds["type"] {
						case "prometheus":
							ast, err := p.ParseExpr(grafanaVars.Replace(expr))
							if err != nil {
								t.Errorf("%s: %q does not parse: %v", title, expr, err)
								continue
							}
							parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
								if vs, ok := n.(*parser.VectorSelector); ok {
									if _, ok := known[vs.Name]; !ok {
										t.Errorf("%s uses %s, which is not in the metric list", title, vs.Name)
									}
								}
								return nil
							})
						case "loki":
							if !logQLSelector.MatchString(expr) {
								t.Errorf("%s: LogQL %q does not start with a {label=\"value\", ...} selector", title, expr)
							}
						default:
							t.Errorf("%s: unexpected datasource type %v", title, ds["type"])
						}
					}
				})
				if panels == 0 {
					t.Errorf("%s has no panel", file)
				}
			}
		}
	}
}

func walkPanels(node map[string]any, visit func(map[string]any)) {
	list, _ := node["panels"].([]any)
	for _, p := range list {
		panel := p.(map[string]any)
		if panel["type"] == "row" {
			walkPanels(panel, visit)
			continue
		}
		visit(panel)
	}
}

func BenchmarkBuild(b *testing.B) {
	in := rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Development})
	for b.Loop() {
		if _, err := dashboards.Build(in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSDKRoundTrip reads every dashboard back with the SDK's own types.
func TestSDKRoundTrip(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, cm := range configMaps(t, rendertest.Input(shopv1.ShopSpec{})) {
		for file, body := range cm.Data {
			var d dashboard.Dashboard
			if err := json.Unmarshal([]byte(body), &d); err != nil {
				t.Errorf("%s: %v", file, err)
				continue
			}
			if d.Uid == nil || len(*d.Uid) > 40 || d.Title == nil || len(d.Panels) == 0 {
				t.Errorf("%s: uid %v title %v, %d panels", file, d.Uid, d.Title, len(d.Panels))
			}
		}
	}
}
