// Command images builds the operator and shopd OCI images without a container
// engine, the way ko does: a static Go binary on an empty base with a passwd
// entry for the non-root user and the CA bundle. Same inputs, same digest.
//
//	go run . -root ../.. -version 0.1.0 -out ../../dist/images
package main

import (
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
	flag.Parse()

	if err := run(*root, *version, *out, *revision, *arch, *registry); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(root, version, out, revision, arch, registry string) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if revision == "" {
		b, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
		if err != nil {
			return fmt.Errorf("git rev-parse HEAD (pass -revision): %w", err)
		}
		revision = strings.TrimSpace(string(b))
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	opts := Options{Root: root, Version: version, Revision: revision, Arch: arch, Epoch: epoch, Registry: registry}
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
