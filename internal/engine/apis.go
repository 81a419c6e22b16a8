package engine

import (
	"context"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/render"
)

// OptionalAPI is a third-party API the builders may render objects of.
type OptionalAPI struct {
	Name  string // what users install, for status messages
	Kinds []schema.GroupVersionKind
	// Flag points at this API's switch in render.APIs.
	Flag func(*render.APIs) *bool
	// Wanted tells whether a Shop would render objects of this API.
	Wanted func(render.Input) bool
}

// OptionalAPIs are every optional API, as discovery finds them.
var OptionalAPIs = []OptionalAPI{
	{
		Name: "Istio (networking.istio.io/v1, security.istio.io/v1)",
		Kinds: []schema.GroupVersionKind{
			{Group: "networking.istio.io", Version: "v1", Kind: "Gateway"},
			{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
			{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"},
			{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"},
			{Group: "security.istio.io", Version: "v1", Kind: "RequestAuthentication"},
			{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"},
		},
		Flag:   func(a *render.APIs) *bool { return &a.Istio },
		Wanted: func(in render.Input) bool { return on(in.Spec.Gateway.Istio.Enabled) },
	},
	{
		Name: "prometheus-operator (monitoring.coreos.com/v1)",
		Kinds: []schema.GroupVersionKind{
			{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"},
			{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"},
		},
		Flag: func(a *render.APIs) *bool { return &a.PrometheusOperator },
		Wanted: func(in render.Input) bool {
			p := in.Spec.Observability.Prometheus
			return on(p.ServiceMonitors) || on(p.Rules)
		},
	},
	{
		Name: "prometheus-operator AlertmanagerConfig (monitoring.coreos.com/v1alpha1)",
		Kinds: []schema.GroupVersionKind{
			{Group: "monitoring.coreos.com", Version: "v1alpha1", Kind: "AlertmanagerConfig"},
		},
		Flag:   func(a *render.APIs) *bool { return &a.AlertmanagerConfig },
		Wanted: func(in render.Input) bool { return on(in.Spec.Observability.Alerting.Routing) },
	},
	{
		Name: "opentelemetry-operator (opentelemetry.io/v1beta1)",
		Kinds: []schema.GroupVersionKind{
			{Group: "opentelemetry.io", Version: "v1beta1", Kind: "OpenTelemetryCollector"},
		},
		Flag:   func(a *render.APIs) *bool { return &a.OpenTelemetryOperator },
		Wanted: func(in render.Input) bool { return on(in.Spec.Observability.Collector.Enabled) },
	},
}

func on(b *bool) bool { return ptr.Deref(b, false) }

// DetectAPIs asks discovery which optional APIs the cluster serves (an API
// counts when it serves all its kinds), and returns them and their kinds.
func DetectAPIs(ctx context.Context, dc discovery.DiscoveryInterface) (render.APIs, []schema.GroupVersionKind, error) {
	served := map[schema.GroupVersionKind]bool{}
	versions := map[schema.GroupVersion]bool{}
	for _, api := range OptionalAPIs {
		for _, k := range api.Kinds {
			versions[k.GroupVersion()] = true
		}
	}
	for gv := range versions {
		list, err := dc.ServerResourcesForGroupVersion(gv.String())
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return render.APIs{}, nil, err
		}
		for _, r := range list.APIResources {
			if !strings.Contains(r.Name, "/") {
				served[gv.WithKind(r.Kind)] = true
			}
		}
	}
	var apis render.APIs
	var kinds []schema.GroupVersionKind
	for _, api := range OptionalAPIs {
		all := true
		for _, k := range api.Kinds {
			all = all && served[k]
		}
		if all {
			*api.Flag(&apis) = true
			kinds = append(kinds, api.Kinds...)
		}
	}
	return apis, kinds, nil
}

// MissingAPIs lists the optional APIs a Shop wants but the cluster lacks.
func MissingAPIs(in render.Input) []string {
	var missing []string
	for _, api := range OptionalAPIs {
		if api.Wanted(in) && !*api.Flag(&in.APIs) {
			missing = append(missing, api.Name)
		}
	}
	return missing
}
