// Package workloads renders the five commerce services: for each a
// ServiceAccount, Deployment and Service (plus a PodDisruptionBudget and a
// HorizontalPodAutoscaler where the profile wants them), the shared ConfigMap
// of service settings, and the generated Secrets that are not a database's
// (auth's signing key, the frontend's cookie secret). Build is pure: it reads
// only its input.
package workloads

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// Annotations on pod templates that roll the pods when what they consume changes.
const (
	ConfigChecksumAnnotation  = "commerce.shopplatform.io/config-checksum"
	SecretsChecksumAnnotation = "commerce.shopplatform.io/secrets-checksum"
)

// Build returns the workloads objects the Shop wants.
func Build(in render.Input) ([]client.Object, error) {
	var objs []client.Object
	signingKey, err := generatedSecret(in, in.SigningKeySecretName(), render.Auth)
	if err != nil {
		return nil, err
	}
	cookie, err := generatedSecret(in, secrets.CookieSecretName(in), render.Frontend)
	if err != nil {
		return nil, err
	}
	config := configMap(in)
	configSum := checksum(config.Data)
	objs = append(objs, signingKey, cookie, config)

	for _, svc := range render.Services {
		w := in.Workload(svc)
		deploy := deployment(in, svc, w)
		ann := deploy.Spec.Template.Annotations
		ann[ConfigChecksumAnnotation] = configSum
		if s := secretsOf(svc, signingKey, cookie, in); len(s) > 0 {
			ann[SecretsChecksumAnnotation] = checksum(s)
		}
		objs = append(objs, serviceAccount(in, svc), deploy, service(in, svc))
		if pdb := podDisruptionBudget(in, svc, w); pdb != nil {
			objs = append(objs, pdb)
		}
		if hpa := horizontalPodAutoscaler(in, svc, w); hpa != nil {
			objs = append(objs, hpa)
		}
	}
	return objs, nil
}

// autoscaled tells whether a HorizontalPodAutoscaler owns the replica count.
func autoscaled(w shopv1.WorkloadSpec) bool {
	return w.Autoscaling != nil && ptr.Deref(w.Autoscaling.Enabled, false)
}

// minReplicas is the fewest pods a service runs with.
func minReplicas(w shopv1.WorkloadSpec) int32 {
	if autoscaled(w) {
		return ptr.Deref(w.Autoscaling.MinReplicas, 1)
	}
	return ptr.Deref(w.Replicas, 1)
}

func serviceAccount(in render.Input, svc string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		ObjectMeta: in.ObjectMeta(in.Name(svc), svc),
		// The services never call the Kubernetes API.
		AutomountServiceAccountToken: ptr.To(false),
	}
}

func service(in render.Input, svc string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: in.ObjectMeta(in.Name(svc), svc),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: in.SelectorLabels(svc),
			Ports: []corev1.ServicePort{
				servicePort(portHTTP, render.HTTPPort),
				servicePort(portAdmin, render.AdminPort),
			},
		},
	}
	if svc == render.Payment {
		// Payment keeps its ledger (idempotency keys, charges) per pod. A
		// checkout runs inside one orders pod, so pinning each caller to one
		// payment pod keeps a charge, its retry and its refund together
		// without Istio; with Istio the DestinationRule hashes on the user.
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	}
	return s
}

func servicePort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{
		Name: name, Port: port, Protocol: corev1.ProtocolTCP,
		TargetPort: intstr.FromString(name), AppProtocol: ptr.To("http"),
	}
}

// generatedSecret renders a Secret the operator generated once, with exactly
// the values in in.Generated.
func generatedSecret(in render.Input, name, component string) (*corev1.Secret, error) {
	data, err := in.GeneratedValues(name)
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		ObjectMeta: in.ObjectMeta(name, component),
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}, nil
}

// secretsOf returns the Secret data a service's pods read only at start
// (generated, or referenced as the controller read it), so that its
// checksum changes only when one of them does.
func secretsOf(svc string, signingKey, cookie *corev1.Secret, in render.Input) map[string]map[string][]byte {
	out := map[string]map[string][]byte{}
	// referenced adds a key of a user's Secret when the controller read one
	// (one Secret may serve several purposes).
	referenced := func(secret, key string) {
		if v := in.Referenced[secret][key]; len(v) > 0 {
			if out[secret] == nil {
				out[secret] = map[string][]byte{}
			}
			out[secret][key] = v
		}
	}
	switch svc {
	case render.Auth:
		out[signingKey.Name] = signingKey.Data
		// Auth bootstraps the admin at start: a new email or password must
		// roll it. Nothing can be learnt of them from the checksum: the
		// signing key, secret and random, is hashed with them.
		if a := in.Spec.Admin; a != nil {
			for _, k := range secrets.AdminKeys {
				referenced(a.SecretName, k)
			}
		}
	case render.Frontend:
		out[cookie.Name] = cookie.Data
	}
	if in.ManagedDatabase(svc) != nil {
		name := in.DatabaseSecretName(svc)
		out[name] = in.Generated[name]
		// The CA only: the pods read nothing else of the TLS Secret.
		tls := secrets.DatabaseTLSSecretName(in, svc)
		out[tls] = map[string][]byte{secrets.CACertKey: in.Generated[tls][secrets.CACertKey]}
	} else if ext := in.ExternalDatabase(svc); ext != nil {
		// An external database's CA is read from a file once per connection
		// pool: a new one must roll the pods. Without a CA nothing is added,
		// so the checksum of Shops without one stays as it was.
		referenced(ext.SecretName, secrets.CACertKey)
	}
	return out
}
