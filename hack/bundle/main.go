// Command bundle writes the OLM bundle (bundle/manifests, bundle/metadata,
// bundle/bundle.Dockerfile) from the kustomize install in config/.
//
//	go run . -root ../.. -version 0.1.0
//
// It lives in its own Go module because operator-framework/api (used for the
// CSV types and for validation) pins an older Kubernetes API than the operator.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	root := flag.String("root", "../..", "repository root")
	version := flag.String("version", "", "operator version (default: VERSION in the root Makefile)")
	image := flag.String("image", "", "operator image (default: ghcr.io/shopplatform/shop-operator:<version>)")
	flag.Parse()

	if err := run(*root, *version, *image); err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}

func run(root, version, image string) error {
	if version == "" {
		v, err := MakefileVersion(root)
		if err != nil {
			return err
		}
		version = v
	}
	files, err := Generate(Options{Root: root, Version: version, Image: image})
	if err != nil {
		return err
	}
	out := filepath.Join(root, "bundle")
	if err := Write(out, files); err != nil {
		return err
	}
	fmt.Printf("wrote %d files to %s (shop-operator.v%s)\n", len(files), out, version)
	return nil
}
