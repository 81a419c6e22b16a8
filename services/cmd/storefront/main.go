// Command storefront runs the whole shop locally for a person to try:
// a throwaway Postgres (Debian's postgresql-15, as the postgres user when run
// as root, in a temp dir on a free port) and the five services as shopd
// subprocesses on free loopback ports. It prints the storefront URL and the
// test cards; Ctrl-C stops everything and removes the temp files.
//
//	make -C services storefront
//	go run ./cmd/storefront -shopd ./bin/shopd
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shopplatform/shop-operator/services/internal/devstack"
)

func main() {
	shopd := flag.String("shopd", "", "path of the shopd binary (default: build it into a temp dir)")
	logLevel := flag.String("log-level", "info", "LOG_LEVEL for the services")
	flag.Parse()
	if err := run(*shopd, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "storefront:", err)
		os.Exit(1)
	}
}

func run(shopd, logLevel string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if shopd == "" {
		dir, err := os.MkdirTemp("", "storefront-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Println("building shopd...")
		if shopd, err = devstack.BuildShopd(ctx, dir); err != nil {
			return err
		}
	}
	secret := make([]byte, 0, 32)
	secret = fmt.Appendf(secret, "local-%d-storefront-secret", time.Now().UnixNano())
	st, err := devstack.Start(ctx, devstack.Options{
		Shopd: shopd,
		Log:   os.Stdout,
		Env:   []string{"LOG_LEVEL=" + logLevel},
		ServiceEnv: map[string][]string{
			"frontend": {"FRONTEND_COOKIE_SECRET=" + string(secret)},
		},
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\nstopping the services and Postgres...")
		st.Stop()
		fmt.Println("stopped; temp files removed.")
	}()
	fmt.Printf(`
  The shop is running.

    Storefront:  %s
    Test cards:  4242 4242 4242 4242  succeeds
                 4000 0000 0000 0002  is declined
                 4000 0000 0000 9995  insufficient funds
                 4000 0000 0000 0119  the provider times out
                 (any future expiry such as 12/30, any 3-digit code)
    APIs:        auth %s  catalog %s  orders %s  payment %s
    Postgres:    %s (databases auth, catalog, orders)
    Logs:        %s

  Press Ctrl-C to stop.
`, st.Frontend(), st.Services["auth"].URL(), st.Services["catalog"].URL(), st.Services["orders"].URL(), st.Services["payment"].URL(),
		strings.TrimSuffix(st.DBURLs["catalog"], "/catalog?sslmode=disable"), st.Dir)
	<-ctx.Done()
	return nil
}
