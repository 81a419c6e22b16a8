package mesh_test

import (
	"testing"

	"github.com/shopplatform/shop-operator/internal/golden"
)

func TestGolden(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.name(), func(t *testing.T) {
			golden.Assert(t, v.name()+".yaml", golden.YAML(t, rendered(t, v.input())))
		})
	}
	t.Run("istio-disabled", func(t *testing.T) {
		golden.Assert(t, "production-istio-disabled.yaml", golden.YAML(t, rendered(t, disabledInput())))
	})
}
