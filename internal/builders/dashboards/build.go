// Package dashboards renders the Shop's dashboards children. Build is pure: it reads only its input.
package dashboards

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Build returns the dashboards objects the Shop wants, or nothing.
func Build(in render.Input) ([]client.Object, error) {
	return nil, nil
}
