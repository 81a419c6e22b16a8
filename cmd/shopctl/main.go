// Command shopctl renders, validates and inspects Shops; see docs/shopctl.md.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/shopplatform/shop-operator/internal/cli"
)

// extraCommands are commands only shopctl has; files of this package
// register theirs from init (e.g. demo.go).
var extraCommands []func() *cobra.Command

func main() { os.Exit(cli.Main("shopctl", extraCommands...)) }
