package dashboards_test

import (
	"testing"

	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// The operations dashboard comes with the load generator or the synthetic check.
func TestOperationsDashboardFollowsTheSwitches(t *testing.T) {
	has := func(spec shopv1.ShopSpec) bool {
		for _, cm := range configMaps(t, rendertest.Input(spec)) {
			if cm.Name == "demo-dashboard-operations" {
				return true
			}
		}
		return false
	}
	prod := shopv1.ShopSpec{Environment: shopv1.Production}
	probe := prod
	probe.Operations.SyntheticCheck.Enabled = ptr.To(true)
	for name, c := range map[string]struct {
		spec shopv1.ShopSpec
		want bool
	}{
		"testing":              {shopv1.ShopSpec{Environment: shopv1.Testing}, true},
		"production":           {prod, false},
		"production-synthetic": {probe, true},
		"development":          {shopv1.ShopSpec{Environment: shopv1.Development}, false},
	} {
		if got := has(c.spec); got != c.want {
			t.Errorf("%s: operations dashboard %v, want %v", name, got, c.want)
		}
	}
}
