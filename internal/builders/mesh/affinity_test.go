package mesh_test

import (
	"testing"

	netv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/render"
)

// Payment keeps its ledger in each pod's memory, so its DestinationRule
// hashes on the user header orders sets: one user, one pod, the same pod in
// every zone (no locality load balancing). The other settings stay, and no
// other service is pinned.
func TestPaymentRequestsOfOneUserReachOnePod(t *testing.T) {
	for _, v := range variants() {
		if !v.istio {
			continue
		}
		in := v.input()
		objs, err := mesh.Build(in)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, o := range objs {
			dr, ok := o.(*networkingv1.DestinationRule)
			if !ok {
				continue
			}
			seen++
			p := dr.Spec.TrafficPolicy
			if p.GetTls().GetMode() != netv1alpha3.ClientTLSSettings_ISTIO_MUTUAL || p.GetConnectionPool() == nil || p.GetOutlierDetection() == nil {
				t.Errorf("%s: %s lost its TLS, pool or outlier detection: %v", v.name(), dr.Name, p)
			}
			lb := p.GetLoadBalancer()
			if dr.Name != in.Name(render.Payment) {
				if lb != nil {
					t.Errorf("%s: %s is pinned: %v", v.name(), dr.Name, lb)
				}
				continue
			}
			if got := lb.GetConsistentHash().GetHttpHeaderName(); got != "x-shop-user" || mesh.PaymentUserHeader != "x-shop-user" {
				t.Errorf("%s: payment hashes on %q, want x-shop-user", v.name(), got)
			}
			if e := lb.GetLocalityLbSetting().GetEnabled(); e == nil || e.GetValue() {
				t.Errorf("%s: payment keeps locality load balancing (%v): zones would hash over different pods", v.name(), e)
			}
		}
		if seen != len(render.Services) {
			t.Errorf("%s: %d DestinationRules, want %d", v.name(), seen, len(render.Services))
		}
	}
}
