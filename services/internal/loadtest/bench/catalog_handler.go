package main

import (
	"context"
	"net/http"

	"github.com/shopplatform/shop-operator/services/internal/catalog"
	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// catalogHandler builds the catalog service's application handler on db,
// as `shopd catalog` does (OpenDB attaches the pgx tracer; migrations are
// already applied by the running stack and are a no-op here).
func catalogHandler(ctx context.Context, db string) (http.Handler, func(), error) {
	pool, err := platform.OpenDB(ctx, db, "catalog", catalog.Migrations())
	if err != nil {
		return nil, nil, err
	}
	// No admin routes are exercised, so the verifier never fetches keys.
	svc := catalog.New(pool, platform.NewVerifier("http://127.0.0.1:1/.well-known/jwks.json", "shop-auth", "shop"))
	return svc.Routes(), pool.Close, nil
}
