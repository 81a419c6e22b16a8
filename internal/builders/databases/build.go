// Package databases renders the Shop's databases children. Build is pure: it reads only its input.
package databases

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Build returns the databases objects the Shop wants, or nothing.
func Build(in render.Input) ([]client.Object, error) {
	return nil, nil
}
