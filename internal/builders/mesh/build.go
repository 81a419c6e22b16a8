// Package mesh renders who may reach the Shop's services and how traffic is
// routed to them. With Istio (its CRDs served and gateway.istio.enabled):
// a Gateway, VirtualServices and DestinationRules for routing, and
// PeerAuthentication, RequestAuthentication and AuthorizationPolicies for
// security. In every mode: NetworkPolicies expressing the same who-may-call-
// whom at layer 4 (without Istio they are the only enforcement, with Istio
// defense in depth), for the services, the databases and the backup jobs.
//
// Who may call whom is decided once, in access.go; docs/security.md explains it.
// Build is pure: it reads only its input.
package mesh

import (
	"fmt"
	"strings"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Mode is how the Shop's traffic is secured.
type Mode int

const (
	// ModeIstio renders Istio routing and security objects.
	ModeIstio Mode = iota
	// ModeNoCRDs renders NetworkPolicies: the cluster does not serve Istio's APIs.
	ModeNoCRDs
	// ModeDisabled renders NetworkPolicies: the Shop turned Istio off.
	ModeDisabled
)

// ModeOf tells which mode a Shop is rendered in.
func ModeOf(in render.Input) Mode {
	switch {
	case !ptr.Deref(in.Spec.Gateway.Istio.Enabled, true):
		return ModeDisabled
	case !in.APIs.Istio:
		return ModeNoCRDs
	default:
		return ModeIstio
	}
}

// Build returns the mesh objects the Shop wants.
func Build(in render.Input) ([]client.Object, error) {
	var out []client.Object
	if ModeOf(in) == ModeIstio {
		out = append(out, routing(in)...)
		out = append(out, security(in)...)
	}
	out = append(out, serviceNetworkPolicies(in)...)
	out = append(out, databaseNetworkPolicies(in)...)
	return out, nil
}

// Reasons of the MeshReady condition.
const (
	ReasonIstioApplied      = "IstioApplied"
	ReasonIstioNotInstalled = "IstioNotInstalled"
	ReasonIstioDisabled     = "IstioDisabled"
)

// Status describes the mesh for the Shop's MeshReady condition, assuming the
// objects Build returned have been applied. The mesh is "ready" in every
// mode: without Istio, NetworkPolicies enforce who may call whom, and the
// message says so.
func Status(in render.Input) (ready bool, reason, message string) {
	switch ModeOf(in) {
	case ModeDisabled:
		return true, ReasonIstioDisabled, "Istio is disabled in the Shop (gateway.istio.enabled: false): NetworkPolicies enforce who may call whom"
	case ModeNoCRDs:
		return true, ReasonIstioNotInstalled, "Istio CRDs not installed: NetworkPolicies enforce who may call whom"
	default:
		return true, ReasonIstioApplied, fmt.Sprintf("Istio gateway, routing and security applied (mTLS %s)", in.Spec.Gateway.Istio.MTLSMode)
	}
}

// StorefrontURL is the storefront's address from the first gateway host
// that is not a wildcard: https when a TLS secret is set, http otherwise;
// "" when there is no such host.
func StorefrontURL(in render.Input) string {
	g := in.Spec.Gateway
	for _, h := range g.Hosts {
		if strings.HasPrefix(h, "*") {
			continue
		}
		if in.GatewayTLS() {
			return "https://" + h
		}
		return "http://" + h
	}
	return ""
}
