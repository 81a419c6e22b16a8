// Package mesh renders the Shop's mesh children. Build is pure: it reads only its input.
package mesh

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Build returns the mesh objects the Shop wants, or nothing.
func Build(in render.Input) ([]client.Object, error) {
	return nil, nil
}
