package controllers

import (
	"context"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"github.com/shopplatform/shop-operator/internal/render"
)

// optionalAPI is a third-party API the builders may render objects of.
type optionalAPI struct {
	name  string // what users install, for status messages
	kinds []schema.GroupVersionKind
	// flag points at this API's switch in render.APIs.
	flag func(*render.APIs) *bool
	// wanted tells whether a Shop would render objects of this API.
	wanted func(render.Input) bool
}

var optionalAPIs = []optionalAPI{
	{
		name: "Istio (networking.istio.io/v1, security.istio.io/v1)",
		kinds: []schema.GroupVersionKind{
			{Group: "networking.istio.io", Version: "v1", Kind: "Gateway"},
			{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
			{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"},
			{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"},
			{Group: "security.istio.io", Version: "v1", Kind: "RequestAuthentication"},
			{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"},
		},
		flag:   func(a *render.APIs) *bool { return &a.Istio },
		wanted: func(in render.Input) bool { return on(in.Spec.Gateway.Istio.Enabled) },
	},
	{
		name: "prometheus-operator (monitoring.coreos.com/v1)",
		kinds: []schema.GroupVersionKind{
			{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"},
			{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"},
		},
		flag: func(a *render.APIs) *bool { return &a.PrometheusOperator },
		wanted: func(in render.Input) bool {
			p := in.Spec.Observability.Prometheus
			return on(p.ServiceMonitors) || on(p.Rules)
		},
	},
	{
		name: "prometheus-operator AlertmanagerConfig (monitoring.coreos.com/v1alpha1)",
		kinds: []schema.GroupVersionKind{
			{Group: "monitoring.coreos.com", Version: "v1alpha1", Kind: "AlertmanagerConfig"},
		},
		flag:   func(a *render.APIs) *bool { return &a.AlertmanagerConfig },
		wanted: func(in render.Input) bool { return on(in.Spec.Observability.Alerting.Routing) },
	},
	{
		name: "opentelemetry-operator (opentelemetry.io/v1beta1)",
		kinds: []schema.GroupVersionKind{
			{Group: "opentelemetry.io", Version: "v1beta1", Kind: "OpenTelemetryCollector"},
		},
		flag:   func(a *render.APIs) *bool { return &a.OpenTelemetryOperator },
		wanted: func(in render.Input) bool { return on(in.Spec.Observability.Collector.Enabled) },
	},
}

func on(b *bool) bool { return b != nil && *b }

// apiDetector finds which optional APIs the cluster serves, through discovery.
// Results are kept for a short while: CRDs are installed rarely, and the CRD
// watch (see SetupWithManager) invalidates the cache when one changes.
type apiDetector struct {
	discovery discovery.DiscoveryInterface
	ttl       time.Duration

	mu      sync.Mutex
	apis    render.APIs
	kinds   []schema.GroupVersionKind
	checked time.Time
}

// Detect returns the optional APIs served and the kinds of all of them.
func (d *apiDetector) Detect(ctx context.Context) (render.APIs, []schema.GroupVersionKind, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.checked.IsZero() && time.Since(d.checked) < d.ttl {
		return d.apis, d.kinds, nil
	}
	served := map[schema.GroupVersionKind]bool{}
	versions := map[schema.GroupVersion]bool{}
	for _, api := range optionalAPIs {
		for _, k := range api.kinds {
			versions[k.GroupVersion()] = true
		}
	}
	for gv := range versions {
		list, err := d.discovery.ServerResourcesForGroupVersion(gv.String())
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
	for _, api := range optionalAPIs {
		all := true
		for _, k := range api.kinds {
			all = all && served[k]
		}
		if all {
			*api.flag(&apis) = true
			kinds = append(kinds, api.kinds...)
		}
	}
	d.apis, d.kinds, d.checked = apis, kinds, time.Now()
	return apis, kinds, nil
}

// Invalidate makes the next Detect ask the API server again.
func (d *apiDetector) Invalidate() {
	d.mu.Lock()
	d.checked = time.Time{}
	d.mu.Unlock()
}

// missingAPIs lists the optional APIs a Shop wants but the cluster lacks.
func missingAPIs(in render.Input) []string {
	var missing []string
	for _, api := range optionalAPIs {
		if api.wanted(in) && !*api.flag(&in.APIs) {
			missing = append(missing, api.name)
		}
	}
	return missing
}
