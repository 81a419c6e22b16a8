package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/profile"
	"github.com/shopplatform/shop-operator/internal/render"
)

// Well-known ports and labels used to find the UIs.
const (
	jaegerUIPort     = 16686
	jaegerComponent  = "jaeger"
	grafanaNameLabel = "app.kubernetes.io/name=grafana"
)

var servicesResource = corev1.SchemeGroupVersion.WithResource("services")

func newOpenCmd() *cobra.Command {
	var flags clusterFlags
	cmd := &cobra.Command{
		Use:   "open NAME",
		Short: "Print the storefront, Jaeger and Grafana URLs of a Shop",
		Long: `open prints the URLs of a Shop: the storefront (status.url, as the operator reports it),
the Jaeger UI when the Shop deploys Jaeger (its Service in the Shop's namespace), and
Grafana when the cluster runs one (a Service labelled app.kubernetes.io/name=grafana),
with the kubectl port-forward command that reaches each from a workstation.`,
		Example: `  $CMD open demo -n shop`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.connect()
			if err != nil {
				return err
			}
			links, err := shopLinks(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			printLinks(cmd.OutOrStdout(), links)
			return nil
		},
	}
	flags.add(cmd.Flags())
	return cmd
}

// link is one URL of a Shop, or why there is none.
type link struct {
	name, url, note string
}

// shopLinks infers the Shop's URLs from its status, its effective spec and
// the Services in the cluster.
func shopLinks(ctx context.Context, c *cluster, name string) ([]link, error) {
	_, shop, err := c.shop(ctx, name)
	if err != nil {
		return nil, err
	}
	spec := profile.Resolve(shop.Spec)

	store := link{name: "Storefront", url: shop.Status.URL}
	if store.url == "" {
		store.note = "not reported yet: the operator has not reconciled the Shop (see status)"
	}

	jaeger, err := jaegerLink(ctx, c, shop, spec)
	if err != nil {
		return nil, err
	}
	grafana, err := grafanaLink(ctx, c, spec)
	if err != nil {
		return nil, err
	}
	return []link{store, jaeger, grafana}, nil
}

func jaegerLink(ctx context.Context, c *cluster, shop *shopv1.Shop, spec profile.Resolved) (link, error) {
	l := link{name: "Jaeger"}
	j := spec.Observability.Jaeger
	switch {
	case !ptr.Deref(j.Enabled, false):
		l.note = "not enabled (spec.observability.jaeger.enabled)"
		return l, nil
	case j.Mode == shopv1.BackendExternal:
		l.note = fmt.Sprintf("external Jaeger: the Shop sends traces to %s; its UI is wherever that Jaeger serves it", j.Endpoint)
		return l, nil
	}
	svcs, err := c.services(ctx, c.namespace, render.LabelShop+"="+shop.Name+","+render.LabelComponent+"="+jaegerComponent)
	if err != nil {
		return l, err
	}
	for _, s := range svcs {
		for _, p := range s.Spec.Ports {
			if p.Port == jaegerUIPort {
				l.url = fmt.Sprintf("http://%s.%s.svc:%d", s.Name, s.Namespace, p.Port)
				l.note = fmt.Sprintf("from a workstation: kubectl port-forward -n %s svc/%s %d, then http://localhost:%d", s.Namespace, s.Name, p.Port, p.Port)
				return l, nil
			}
		}
	}
	l.note = "enabled, but its Service is not there yet (see status)"
	return l, nil
}

func grafanaLink(ctx context.Context, c *cluster, spec profile.Resolved) (link, error) {
	l := link{name: "Grafana"}
	g := spec.Observability.Grafana
	if !ptr.Deref(g.Dashboards, false) {
		l.note = "dashboards not enabled (spec.observability.grafana.dashboards)"
		return l, nil
	}
	svcs, err := c.services(ctx, "", grafanaNameLabel)
	if err != nil {
		return l, err
	}
	if len(svcs) == 0 {
		l.note = fmt.Sprintf("no Grafana found (a Service labelled %s); the dashboards wait in ConfigMaps for Grafana's sidecar, folder %q", grafanaNameLabel, g.Folder)
		return l, nil
	}
	s := svcs[0]
	port := int32(80)
	if len(s.Spec.Ports) > 0 {
		port = s.Spec.Ports[0].Port
	}
	l.url = fmt.Sprintf("http://%s.%s.svc:%d/dashboards?query=%s", s.Name, s.Namespace, port, url.QueryEscape(g.Folder))
	l.note = fmt.Sprintf("from a workstation: kubectl port-forward -n %s svc/%s 3000:%d, then http://localhost:3000/dashboards?query=%s", s.Namespace, s.Name, port, url.QueryEscape(g.Folder))
	return l, nil
}

// services lists Services by label selector, sorted by namespace and name.
func (c *cluster) services(ctx context.Context, namespace, selector string) ([]corev1.Service, error) {
	items, err := c.list(ctx, servicesResource, namespace, selector)
	if err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	out := make([]corev1.Service, 0, len(items))
	for _, u := range items {
		var s corev1.Service
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b corev1.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

func printLinks(w io.Writer, links []link) {
	for _, l := range links {
		switch {
		case l.url != "" && l.note != "":
			fmt.Fprintf(w, "%-11s %s\n%-11s (%s)\n", l.name+":", l.url, "", l.note)
		case l.url != "":
			fmt.Fprintf(w, "%-11s %s\n", l.name+":", l.url)
		default:
			fmt.Fprintf(w, "%-11s - %s\n", l.name+":", l.note)
		}
	}
}
