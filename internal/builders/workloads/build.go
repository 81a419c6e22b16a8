// Package workloads renders the Shop's workloads children. Build is pure: it reads only its input.
package workloads

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Build returns the workloads objects the Shop wants, or nothing.
func Build(in render.Input) ([]client.Object, error) {
	return nil, nil
}
