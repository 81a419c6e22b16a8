// Command images builds the operator and shopd OCI images without a container
// engine, the way ko does: a static Go binary on an empty base with a passwd
// entry for the non-root user and the CA bundle. Same inputs, same digest.
//
//	go run . -root ../.. -version 0.1.0 -out ../../dist/images
//
// With -local it builds every image the local cluster's node needs (those
// two and the third-party add-ons, from binaries built on this machine and
// Debian packages) into -out, lists them in images.json and prints -out on
// its last line:
//
//	go run . -local -out DIR [-node-bin NODEDIR] [-jaeger PATH] [-otelcol PATH]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

func main() {
	root := flag.String("root", "../..", "repository root")
	version := flag.String("version", "0.1.0", "image tag and the version linked into the binaries")
	out := flag.String("out", "dist/images", "output directory for the image tarballs")
	revision := flag.String("revision", "", "VCS revision for the labels (default: git rev-parse HEAD)")
	arch := flag.String("arch", runtime.GOARCH, "target architecture (linux)")
	registry := flag.String("registry", "ghcr.io/shopplatform", "registry and namespace of the image names")
	local := flag.Bool("local", false, "build every image the local cluster needs (the two above and the third-party ones) into -out, with images.json")
	var in LocalInputs
	flag.StringVar(&in.NodeBin, "node-bin", "", "with -local: the directory hack/node-binaries.sh prints (default: run it)")
	flag.StringVar(&in.Jaeger, "jaeger", "", "with -local: the jaeger binary (default: run hack/otelcol/build-jaeger.sh)")
	flag.StringVar(&in.Otelcol, "otelcol", "", "with -local: the otelcol-shop binary (default: run hack/otelcol/build.sh)")
	flag.Parse()

	var err error
	if *local {
		err = runLocal(*root, *version, *out, *revision, *arch, *registry, in)
	} else {
		err = run(*root, *version, *out, *revision, *arch, *registry)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

// options resolves the flags every build shares.
func options(root, version, revision, arch, registry string) (Options, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return Options{}, err
	}
	if revision == "" {
		b, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
		if err != nil {
			return Options{}, fmt.Errorf("git rev-parse HEAD (pass -revision): %w", err)
		}
		revision = strings.TrimSpace(string(b))
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return Options{}, err
	}
	return Options{Root: root, Version: version, Revision: revision, Arch: arch, Epoch: epoch, Registry: registry}, nil
}

// runLocal: go run . -local -out DIR [-node-bin NODEDIR] [-jaeger PATH] [-otelcol PATH].
func runLocal(root, version, out, revision, arch, registry string, in LocalInputs) error {
	opts, err := options(root, version, revision, arch, registry)
	if err != nil {
		return err
	}
	_, err = RunLocal(context.Background(), opts, in, out, os.Stdout)
	return err
}

func run(root, version, out, revision, arch, registry string) error {
	opts, err := options(root, version, revision, arch, registry)
	if err != nil {
		return err
	}
	for _, spec := range Specs() {
		res, err := BuildTarball(spec, opts, out)
		if err != nil {
			return fmt.Errorf("%s: %w", spec.Name, err)
		}
		fmt.Printf("%s %s %s (%d bytes)\n", res.Ref, res.Digest, res.Path, res.Size)
	}
	return nil
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (https://reproducible-builds.org);
// unset means 0, as in ko.
func sourceDateEpoch() (int64, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
	}
	return n, nil
}
