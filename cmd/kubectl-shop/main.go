// Command kubectl-shop is the kubectl plugin "kubectl shop": the same commands
// as shopctl (render, validate, status, open); see docs/shopctl.md.
package main

import (
	"os"

	"github.com/shopplatform/shop-operator/internal/cli"
)

func main() { os.Exit(cli.Main("kubectl-shop")) }
