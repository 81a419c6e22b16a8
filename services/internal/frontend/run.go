package frontend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// Run serves the storefront until ctx ends. Besides platform.Config it reads
// FRONTEND_COOKIE_SECRET (signs the cart and user cookies; random per process
// when unset), FRONTEND_SECURE_COOKIES=true (Secure cookies behind TLS),
// FRONTEND_REMOTE_IMAGES=true (show the catalog's https image URLs) and
// SHOP_NAME.
func Run(ctx context.Context, cfg platform.Config) error {
	opts, err := OptionsFromEnv(cfg)
	if err != nil {
		return err
	}
	tel, err := platform.SetupTelemetry(ctx, cfg, nil)
	if err != nil {
		return err
	}
	opts.Logger = tel.Logger
	if len(opts.CookieSecret) == 0 {
		tel.Logger.Warn("FRONTEND_COOKIE_SECRET is not set: using a random secret, carts and logins do not survive a restart or span replicas")
	}
	srv, err := New(opts)
	if err != nil {
		_ = tel.Shutdown(context.Background())
		return err
	}
	return platform.Serve(ctx, cfg, tel, srv, srv.ReadyChecks()...)
}

// OptionsFromEnv builds Options from the config and the frontend's own variables.
func OptionsFromEnv(cfg platform.Config) (Options, error) {
	o := Options{
		AuthURL:    cfg.AuthURL,
		CatalogURL: cfg.CatalogURL,
		OrdersURL:  cfg.OrdersURL,
		Client:     platform.NewHTTPClient(backendTimeout),
		ShopName:   cfg.ShopName,
	}
	if s := platform.Getenv("FRONTEND_COOKIE_SECRET"); s != "" {
		if len(s) < 16 {
			return o, errors.New("FRONTEND_COOKIE_SECRET: use at least 16 characters")
		}
		o.CookieSecret = []byte(s)
	}
	var err error
	if o.SecureCookies, err = platform.EnvBool("FRONTEND_SECURE_COOKIES"); err != nil {
		return o, err
	}
	if o.RemoteImages, err = platform.EnvBool("FRONTEND_REMOTE_IMAGES"); err != nil {
		return o, err
	}
	return o, nil
}

// ReadyChecks report whether each backend is reachable: auth and catalog
// must answer HTTP below 500 on a public, cheap route; orders has no public
// route, so a TCP connect is enough (a tokenless request would only add 401s
// to its metrics every probe).
func (s *Server) ReadyChecks() []platform.Check {
	probe := func(b *backend, path string) platform.Check {
		return platform.Check{Name: b.name, Func: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
			if err != nil {
				return err
			}
			resp, err := b.hc.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				return fmt.Errorf("%s answered %s", b.name, resp.Status)
			}
			return nil
		}}
	}
	dial := func(b *backend) platform.Check {
		return platform.Check{Name: b.name, Func: func(ctx context.Context) error {
			u, err := url.Parse(b.base)
			if err != nil {
				return err
			}
			port := u.Port()
			if port == "" {
				port = "80"
				if u.Scheme == "https" {
					port = "443"
				}
			}
			host := net.JoinHostPort(u.Hostname(), port)
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
			if err != nil {
				return err
			}
			return c.Close()
		}}
	}
	return []platform.Check{
		probe(s.b.auth, "/.well-known/jwks.json"),
		probe(s.b.catalog, "/api/catalog/categories"),
		dial(s.b.orders),
	}
}
