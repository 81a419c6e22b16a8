// Package collector renders the Shop's collector children. Build is pure: it reads only its input.
package collector

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Build returns the collector objects the Shop wants, or nothing.
func Build(in render.Input) ([]client.Object, error) {
	return nil, nil
}
