// Command shopd runs one of the shop's services:
//
//	shopd auth|catalog|orders|payment|frontend
//	shopd loadgen|synthetic   (the testing profile's load generator and synthetic checkout)
//	shopd backup-upload       (copies a database's dumps to an S3-compatible bucket)
//
// Everything else comes from the environment; see docs/services.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/shopplatform/shop-operator/services/internal/auth"
	"github.com/shopplatform/shop-operator/services/internal/backupupload"
	"github.com/shopplatform/shop-operator/services/internal/catalog"
	"github.com/shopplatform/shop-operator/services/internal/frontend"
	"github.com/shopplatform/shop-operator/services/internal/loadgen"
	"github.com/shopplatform/shop-operator/services/internal/orders"
	"github.com/shopplatform/shop-operator/services/internal/payment"
	"github.com/shopplatform/shop-operator/services/internal/platform"
	"github.com/shopplatform/shop-operator/services/internal/synthetic"
)

var services = map[string]func(context.Context, platform.Config) error{
	"auth":     auth.Run,
	"catalog":  catalog.Run,
	"frontend": frontend.Run,
	"orders":   orders.Run,
	"payment":  payment.Run,
	// Not services: load and checks against them (docs/operations-testing.md).
	"loadgen":   loadgen.Run,
	"synthetic": synthetic.Run,
	// The backup CronJob's upload step (docs/backup-restore.md).
	"backup-upload": backupupload.Run,
}

func main() {
	if len(os.Args) != 2 || services[os.Args[1]] == nil {
		if len(os.Args) == 2 && (os.Args[1] == "version" || os.Args[1] == "--version") {
			fmt.Println(platform.Version)
			return
		}
		fmt.Fprintln(os.Stderr, "usage: shopd auth|catalog|orders|payment|frontend|loadgen|synthetic|backup-upload (configured by environment; see docs/services.md)")
		os.Exit(2)
	}
	name := os.Args[1]
	cfg, err := platform.LoadConfig(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shopd %s: %v\n", name, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := services[name](ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "shopd %s: %v\n", name, err)
		os.Exit(1)
	}
}
