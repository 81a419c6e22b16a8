// Package localstack puts the Shop platform on a local cluster the way a
// platform engineer installs it: the real node's images built here and
// imported, the opentelemetry-operator from its released module's own
// manifests, the shop operator with `kubectl apply -k config/default`, then a
// Shop. `shopctl demo` and the end-to-end tests use it.
//
//	parts, _ := localstack.Build(ctx, log)          // binaries and images, cached
//	c, _ := localcluster.Start(ctx, parts.ClusterOptions(log))
//	_ = localstack.Install(ctx, c, log)             // both operators, Ready
//	shop, _ := localstack.ReadShop("development")   // a sample + LocalOverrides
package localstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shopplatform/shop-operator/internal/localcluster"
)

// Image is one image tarball built by hack/images -local.
type Image struct {
	Ref    string `json:"ref"`
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

// Parts are what a local platform runs from: the cluster's binaries and the
// images of every pod.
type Parts struct {
	BinDir, NodeBinDir string
	Images             []Image
}

// ClusterOptions are the options of a real-node cluster with these parts.
func (p Parts) ClusterOptions(log io.Writer) localcluster.Options {
	o := localcluster.Options{Mode: localcluster.RealNode, BinDir: p.BinDir, NodeBinDir: p.NodeBinDir, Log: log}
	for _, img := range p.Images {
		o.Images = append(o.Images, img.Path)
	}
	return o
}

// Build finds or builds everything: the Kubernetes binaries (with kubelet
// and kube-proxy), the node's programs and every image, each cached by
// version (cold: about 40 minutes on 2 cores; warm: seconds, plus the two
// images of this repository's code). Progress goes to log.
func Build(ctx context.Context, log io.Writer) (Parts, error) {
	var p Parts
	var err error
	if p.BinDir, err = localcluster.FindBinaries(ctx, log); err != nil {
		return p, err
	}
	if p.NodeBinDir, err = localcluster.FindNodeBinaries(ctx, log); err != nil {
		return p, err
	}
	p.Images, err = BuildImages(ctx, p.NodeBinDir, log)
	return p, err
}

// EnvImages names an environment variable that, when set, is a directory
// holding images built by hack/images -local (its images.json): BuildImages
// then builds nothing.
const EnvImages = "SHOP_LOCAL_IMAGES"

// BuildImages runs hack/images -local and reads the images it lists.
func BuildImages(ctx context.Context, nodeBin string, log io.Writer) ([]Image, error) {
	if dir := os.Getenv(EnvImages); dir != "" {
		return readImages(dir)
	}
	root, err := localcluster.RepoRoot()
	if err != nil {
		return nil, err
	}
	cache, err := cacheDir()
	if err != nil {
		return nil, err
	}
	// One directory per checkout: two worktrees build different shopd and
	// operator images, and a run imports the tarballs after its build.
	sum := sha256.Sum256([]byte(root))
	out := filepath.Join(cache, "images", "local-"+hex.EncodeToString(sum[:4]))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	// Two runs from one checkout (a demo beside a test) build in turn.
	unlock, err := localcluster.Lock(filepath.Join(out, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", ".", "-local", "-out", out, "-node-bin", nodeBin, "-root", root)
	cmd.Dir = filepath.Join(root, "hack", "images")
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("localstack: building the images (hack/images -local): %w", err)
	}
	return readImages(out)
}

func readImages(dir string) ([]Image, error) {
	data, err := os.ReadFile(filepath.Join(dir, "images.json"))
	if err != nil {
		return nil, err
	}
	var imgs []Image
	if err := json.Unmarshal(data, &imgs); err != nil {
		return nil, fmt.Errorf("localstack: %s/images.json: %w", dir, err)
	}
	return imgs, nil
}

func cacheDir() (string, error) {
	if d := os.Getenv("SHOP_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "shop-operator"), nil
}

// kubectl runs kubectl against the cluster with stdin, bounded.
func kubectl(ctx context.Context, c *localcluster.Cluster, stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", c.KubeconfigPath()}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
