package mesh_test

import (
	"testing"

	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/golden"
)

// TestGolden keeps the objects in the order the engine applies them.
func TestGolden(t *testing.T) {
	for _, v := range allVariants() {
		t.Run(v.Name, func(t *testing.T) {
			objs := buildertest.Build(t, mesh.Build, v.Input)
			engine.Sort(objs)
			golden.Assert(t, v.Name+".yaml", golden.YAML(t, objs))
		})
	}
}
