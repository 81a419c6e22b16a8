// Package collector renders the Shop's telemetry pipeline: the
// OpenTelemetryCollector(s) for the opentelemetry-operator, the RBAC its
// k8s_attributes processor needs, and the Jaeger and Loki backends a
// development or testing Shop runs in its namespace. Build is pure: it reads
// only its input. The design is written up in docs/observability.md.
package collector

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Component label values of the objects rendered here.
const (
	componentCollector = "collector"
	componentSampler   = "collector-sampler"
	componentJaeger    = "jaeger"
	componentLoki      = "loki"
)

// CollectorGVK of the opentelemetry-operator's collector resource.
const (
	collectorAPIVersion = "opentelemetry.io/v1beta1"
	collectorKind       = "OpenTelemetryCollector"
)

// Build returns the collector objects the Shop wants, or nothing.
func Build(in render.Input) ([]client.Object, error) {
	p := newPlan(in)
	var objs []client.Object
	if p.collector {
		gw, err := collectorObject(in, p, in.Shop.Name, componentCollector, gatewayConfig(in, p))
		if err != nil {
			return nil, err
		}
		objs = append(objs, gw)
		objs = append(objs, k8sAttributesRBAC(in)...)
		if p.tailSampling {
			s, err := collectorObject(in, p, samplerName(in), componentSampler, samplerConfig(in, p))
			if err != nil {
				return nil, err
			}
			objs = append(objs, s)
		}
	}
	if deployJaeger(in) {
		objs = append(objs, jaegerObjects(in)...)
	}
	if deployLoki(in) {
		objs = append(objs, lokiObjects(in)...)
	}
	return objs, nil
}

// samplerName is the tail-sampling tier's collector: <shop>-sampler (its
// pods and Services are then <shop>-sampler-collector*).
func samplerName(in render.Input) string { return in.Name(samplerSuffix) }

// collectorObject renders one OpenTelemetryCollector. The gateway is named
// after the Shop so that the operator's Service is <shop>-collector, where
// the services send OTLP (render.Input.OTLPEndpoint).
func collectorObject(in render.Input, p plan, name, component string, cfg map[string]any) (*unstructured.Unstructured, error) {
	col := in.Spec.Observability.Collector
	replicas := ptr.Deref(col.Replicas, 1)
	spec := map[string]any{
		"mode":               "deployment",
		"managementState":    "managed",
		"upgradeStrategy":    "none", // the Shop pins the image; the operator must not rewrite the config
		"image":              col.Image,
		"replicas":           replicas,
		"config":             cfg,
		"podSecurityContext": render.PodSecurity(0),
		"securityContext":    render.ContainerSecurity(),
	}
	if env := secretEnv(in, p); len(env) > 0 {
		spec["env"] = env
	}
	var res corev1.ResourceRequirements
	if col.Resources != nil {
		res = *col.Resources
	}
	spec["resources"] = render.WithEphemeralStorage(res, resource.Quantity{})
	if component == componentCollector {
		// The gateway runs with the k8s_attributes RBAC.
		spec["serviceAccount"] = in.CollectorServiceAccountName()
		spec["ports"] = []any{map[string]any{"name": PrometheusPortName, "port": PrometheusPort, "protocol": "TCP"}}
	}
	if in.Spec.PodDisruptionBudgets && replicas > 1 {
		spec["podDisruptionBudget"] = map[string]any{"maxUnavailable": 1}
	}
	if in.Spec.TopologySpread && replicas > 1 {
		spec["topologySpreadConstraints"] = topologySpread(in, name)
	}
	meta := in.ObjectMeta(name, component)
	obj := map[string]any{
		"apiVersion": collectorAPIVersion,
		"kind":       collectorKind,
		"metadata":   map[string]any{"name": meta.Name, "namespace": meta.Namespace, "labels": meta.Labels},
		"spec":       spec,
	}
	// A JSON round trip turns typed fields into the plain JSON values
	// (int64, float64, string, maps, slices) that unstructured requires.
	b, err := utiljson.Marshal(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := utiljson.Unmarshal(b, &u.Object); err != nil {
		return nil, err
	}
	return u, nil
}

// topologySpread spreads a collector's pods over zones and nodes. The pods
// carry the opentelemetry-operator's labels, not ours: select by those.
func topologySpread(in render.Input, name string) []corev1.TopologySpreadConstraint {
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{
		"app.kubernetes.io/managed-by": "opentelemetry-operator",
		"app.kubernetes.io/component":  "opentelemetry-collector",
		"app.kubernetes.io/instance":   in.Shop.Namespace + "." + name,
	}}
	spread := func(key string) corev1.TopologySpreadConstraint {
		return corev1.TopologySpreadConstraint{
			MaxSkew: 1, TopologyKey: key, WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: selector,
			// Count only the pods of the current revision during a rollout.
			MatchLabelKeys: []string{"pod-template-hash"},
		}
	}
	return []corev1.TopologySpreadConstraint{spread(corev1.LabelTopologyZone), spread(corev1.LabelHostname)}
}

// secretEnv brings the exporters' credentials in from the Secrets the Shop
// names; the config refers to them as ${env:NAME}, so no secret is inlined.
func secretEnv(in render.Input, p plan) []corev1.EnvVar {
	o := in.Spec.Observability
	var env []corev1.EnvVar
	if p.datadog {
		env = append(env, render.SecretEnv(envDatadogAPIKey, o.Datadog.APIKeySecretRef.Name, o.Datadog.APIKeySecretRef.Key))
	}
	if p.newRelic {
		env = append(env, render.SecretEnv(envNewRelicLicenseKey, o.NewRelic.LicenseKeySecretRef.Name, o.NewRelic.LicenseKeySecretRef.Key))
	}
	return env
}

// k8sAttributesRBAC lets the gateway's k8s_attributes processor watch pods
// and ReplicaSets (for k8s.deployment.name) in the Shop's namespace only.
func k8sAttributesRBAC(in render.Input) []client.Object {
	name := in.CollectorServiceAccountName()
	sa := &corev1.ServiceAccount{ObjectMeta: in.ObjectMeta(name, componentCollector)}
	role := &rbacv1.Role{
		ObjectMeta: in.ObjectMeta(name, componentCollector),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: in.ObjectMeta(name, componentCollector),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: in.Shop.Namespace}},
	}
	return []client.Object{sa, role, binding}
}
