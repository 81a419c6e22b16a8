// Package dashboards renders the Shop's Grafana dashboards as ConfigMaps for
// Grafana's dashboard sidecar. Dashboards are built with the
// grafana-foundation-sdk; the queries use the metric names of package
// monitoring (its metric list is the one the tests check against). Build is
// pure: it reads only its input.
package dashboards

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
)

// Component is the app.kubernetes.io/component of the dashboards' ConfigMaps.
const Component = "dashboards"

// FolderAnnotation tells Grafana's sidecar the folder of a dashboard.
const FolderAnnotation = "grafana_folder"

// board is one dashboard: a stable id (ConfigMap and file name) and its builder.
type board struct {
	id    string
	build func(b *builder) *dashboard.DashboardBuilder
}

// boards lists the dashboards a Shop gets.
func boards(in render.Input) []board {
	out := []board{{"overview", overview}}
	for _, svc := range render.Services {
		out = append(out, board{"service-" + svc, func(b *builder) *dashboard.DashboardBuilder { return service(b, svc) }})
	}
	out = append(out, board{"payments", payments}, board{"databases", databases}, board{"collector", collector})
	if in.Spec.Environment == shopv1.Development {
		out = append(out, board{"debug", debug})
	}
	if wantsOperations(in) {
		out = append(out, board{"operations", operations})
	}
	return out
}

// Build returns one ConfigMap per dashboard, or nothing.
func Build(in render.Input) ([]client.Object, error) {
	g := in.Spec.Observability.Grafana
	if !ptr.Deref(g.Dashboards, false) {
		return nil, nil
	}
	labels := g.Labels
	if len(labels) == 0 {
		labels = map[string]string{"grafana_dashboard": "1"}
	}
	var out []client.Object
	for _, d := range boards(in) {
		b := newBuilder(in)
		dash, err := b.dashboard(d.id, d.build).Build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", d.id, err)
		}
		body, err := json.MarshalIndent(dash, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", d.id, err)
		}
		meta := in.ObjectMeta(in.Name("dashboard-"+d.id), Component)
		meta.Labels = render.WithLabels(meta.Labels, labels)
		if g.Folder != "" {
			meta.Annotations = map[string]string{FolderAnnotation: g.Folder}
		}
		out = append(out, &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{d.id + ".json": string(body)}})
	}
	return out, nil
}

// UID is a dashboard's Grafana UID: stable, unique per namespace, Shop and
// dashboard, and within Grafana's 40 characters.
func UID(in render.Input, id string) string {
	sum := sha256.Sum256([]byte(in.Shop.Namespace + "/" + in.Shop.Name))
	uid := "shop-" + hex.EncodeToString(sum[:5]) + "-" + id
	return uid[:min(len(uid), 40)]
}
