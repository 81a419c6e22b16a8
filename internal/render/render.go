// Package render holds what every builder receives and the naming and
// labelling rules they share, so that a child's name or labels are decided in
// one place.
package render

import (
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/profile"
)

// Input is everything a builder may look at. Builders are pure functions of
// it. engine.Prepare makes it, for the controller and shopctl alike.
type Input struct {
	// Shop is the resource being rendered (name, namespace, UID; its spec is
	// the user's, see Spec for the effective one).
	Shop *shopv1.Shop
	// Spec is the effective spec: profile defaults under the user's values.
	Spec profile.Resolved
	// APIs tells which optional APIs the cluster serves.
	APIs APIs
	// Generated holds the values of the Secrets the operator generates once and
	// keeps (see package secrets), by Secret name and key. Builders render
	// those Secrets with exactly these values.
	Generated map[string]map[string][]byte
	// Referenced holds the values that pods read only when they start from
	// the Secrets the Shop references (an external database's ca.crt, the
	// admin's email and password: SecretRef.Rolls), by Secret name and key,
	// as engine.Prepare read them (absent: no such key, or no such Secret).
	// Builders only hash them, so that a change rolls the pods that read
	// them.
	Referenced map[string]map[string][]byte
}

// APIs lists the optional third-party APIs a builder may render objects of.
type APIs struct {
	Istio                 bool // networking.istio.io/v1, security.istio.io/v1
	PrometheusOperator    bool // monitoring.coreos.com/v1 ServiceMonitor, PrometheusRule
	AlertmanagerConfig    bool // monitoring.coreos.com/v1alpha1 AlertmanagerConfig
	OpenTelemetryOperator bool // opentelemetry.io/v1beta1 OpenTelemetryCollector
}

// AllAPIs is a cluster with every optional API installed.
var AllAPIs = APIs{Istio: true, PrometheusOperator: true, AlertmanagerConfig: true, OpenTelemetryOperator: true}

// The five commerce services.
const (
	Frontend = "frontend"
	Auth     = "auth"
	Catalog  = "catalog"
	Orders   = "orders"
	Payment  = "payment"
)

// Services lists the commerce services in a stable order.
var Services = []string{Frontend, Auth, Catalog, Orders, Payment}

// Databases lists the services that own a database, in a stable order.
var Databases = []string{Auth, Catalog, Orders}

// Label keys.
const (
	LabelShop      = "commerce.shopplatform.io/shop"
	LabelComponent = "app.kubernetes.io/component"
	LabelName      = "app.kubernetes.io/name"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelVersion   = "app.kubernetes.io/version"

	// AnnotationRetain on a child keeps it when the Shop is deleted: the engine
	// gives it no owner reference. Used for what belongs with data that
	// outlives the Shop (a managed database's credentials live as long as
	// its retained volume, so a re-created Shop can open the data again).
	AnnotationRetain = "commerce.shopplatform.io/retain"

	// ManagedBy is the value of LabelManagedBy on every child, and the
	// operator's server-side apply field manager.
	ManagedBy = "shop-operator"
)

// Name returns the name of a child: <shop>-<component>.
func (in Input) Name(component string) string { return in.Shop.Name + "-" + component }

// DatabaseName returns the name of a service's managed database: <shop>-<service>-db.
func (in Input) DatabaseName(service string) string { return in.Name(service + "-db") }

// DatabaseSecretName is the generated Secret with a managed database's
// credentials: keys password (the service's own role) and superuser-password.
func (in Input) DatabaseSecretName(service string) string {
	return in.DatabaseName(service) + "-credentials"
}

// SigningKeySecretName is the generated Secret with the auth service's JWT
// signing key (key signing-key.pem, PKCS#8 Ed25519).
func (in Input) SigningKeySecretName() string { return in.Name("auth-signing-key") }

// CollectorServiceAccountName is the ServiceAccount the Shop's collector
// runs as (the OpenTelemetryCollector's spec.serviceAccount, bound to the
// k8s_attributes RBAC), and so its mesh identity: the collector builder sets
// it, the mesh builder admits it.
func (in Input) CollectorServiceAccountName() string { return in.Name("otel-collector") }

// SelectorLabels are the stable labels that select a component's pods.
// Note: app.kubernetes.io/instance is deliberately not used: Argo CD tracks
// its applications with it and would prune children that carry it.
func (in Input) SelectorLabels(component string) map[string]string {
	return map[string]string{LabelShop: in.Shop.Name, LabelComponent: component}
}

// Labels are the labels of every object of a component.
func (in Input) Labels(component string) map[string]string {
	l := in.SelectorLabels(component)
	l[LabelName] = "shop-" + component
	l[LabelPartOf] = "shop"
	l[LabelManagedBy] = ManagedBy
	return l
}

// ObjectMeta returns the metadata of a namespaced child of a component.
func (in Input) ObjectMeta(name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: in.Shop.Namespace, Labels: in.Labels(component)}
}

// WithLabels returns a copy of base with extra added.
func WithLabels(base, extra map[string]string) map[string]string {
	out := maps.Clone(base)
	maps.Copy(out, extra)
	return out
}
