package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
)

// apiDetector finds which optional APIs the cluster serves, through discovery
// (engine.DetectAPIs). Results are kept for a short while: CRDs are
// installed rarely, and the CRD watch (see SetupWithManager) invalidates the
// cache when one changes.
type apiDetector struct {
	discovery discovery.DiscoveryInterface
	ttl       time.Duration

	mu      sync.Mutex
	apis    render.APIs
	kinds   []schema.GroupVersionKind
	checked time.Time
}

// Detect returns the optional APIs served and the kinds of all of them.
func (d *apiDetector) Detect(ctx context.Context) (render.APIs, []schema.GroupVersionKind, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.checked.IsZero() && time.Since(d.checked) < d.ttl {
		return d.apis, d.kinds, nil
	}
	apis, kinds, err := engine.DetectAPIs(ctx, d.discovery)
	if err != nil {
		return render.APIs{}, nil, err
	}
	d.apis, d.kinds, d.checked = apis, kinds, time.Now()
	return apis, kinds, nil
}

// Invalidate makes the next Detect ask the API server again.
func (d *apiDetector) Invalidate() {
	d.mu.Lock()
	d.checked = time.Time{}
	d.mu.Unlock()
}
