// Package cli is the command line of shopctl and of the kubectl plugin
// kubectl-shop: both binaries run the same commands from here.
//
//   - render: print the children the operator would apply for Shops in files;
//   - validate: check Shops exactly as the API server does;
//   - status NAME: a tree of a Shop's children in the cluster with their readiness;
//   - open NAME: the storefront, Jaeger and Grafana URLs of a Shop.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Main runs the command line of the binary called name with its arguments
// and returns the process's exit code: 0, or 1 after printing the error.
// extra adds commands only that binary has (e.g. shopctl demo).
func Main(name string, extra ...func() *cobra.Command) int {
	root := NewRoot(name, extra...)
	root.SetArgs(os.Args[1:])
	return Execute(root, os.Stderr)
}

// Execute runs root and reports any error on stderr, returning the exit code.
func Execute(root *cobra.Command, stderr io.Writer) int {
	err := root.Execute()
	if err == nil {
		return 0
	}
	var silent silentError
	if !errors.As(err, &silent) {
		fmt.Fprintln(stderr, "Error:", err)
	}
	return 1
}

// silentError fails a command whose messages are already printed.
type silentError struct{ error }

// NewRoot builds the root command. For the kubectl plugin (name
// kubectl-shop) it is shown as "kubectl shop".
func NewRoot(name string, extra ...func() *cobra.Command) *cobra.Command {
	use, display := name, name
	if name == "kubectl-shop" {
		use, display = "shop", "kubectl shop" // kubectl's plugin convention
	}
	root := &cobra.Command{
		Use:         use,
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: display},
		Short:       "Render, validate and inspect Shops (commerce.shopplatform.io/v1alpha1)",
		Long: display + ` renders the children the Shop operator would apply, validates Shops
exactly as the API server does, and shows a Shop's children and URLs in a cluster.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.AddCommand(newRenderCmd(), newValidateCmd(), newStatusCmd(), newOpenCmd(), newDBCmd())
	for _, cmd := range extra {
		root.AddCommand(cmd())
	}
	for _, cmd := range root.Commands() { // examples name the binary as it is called
		cmd.Example = strings.ReplaceAll(cmd.Example, "$CMD", display)
	}
	return root
}
