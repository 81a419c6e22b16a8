package live

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopplatform/shop-operator/internal/localcluster"
)

// TestDemo runs `shopctl demo` as `make demo` does, with its own cluster
// beside the suite's: it must end at a storefront and a Jaeger UI that answer
// on loopback, and SIGTERM must stop everything and leave nothing of its
// cluster on the host. It runs in parallel with TestShop (both mostly wait
// on probes), so it adds little to `make test`.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "shopctl")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/shopctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/shopctl: %v\n%s", err, out)
	}

	before := localcluster.SnapshotHost()
	demo := exec.CommandContext(ctx, bin, "demo", "--monitoring")
	demo.Dir = root
	// Even when the test runs out of time the demo gets SIGTERM, as a user's
	// Ctrl-C, so that it removes its cluster; SIGKILL only if it hangs.
	demo.Cancel = func() error { return demo.Process.Signal(syscall.SIGTERM) }
	demo.WaitDelay = 3 * time.Minute
	pr, pw := io.Pipe()
	demo.Stdout, demo.Stderr = pw, pw
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- demo.Wait(); pw.Close() }()
	var stopOnce sync.Once
	stop := func() error {
		var err error
		stopOnce.Do(func() {
			if err = demo.Process.Signal(syscall.SIGTERM); err != nil {
				return
			}
			select {
			case err = <-exited:
			case <-time.After(3 * time.Minute):
				err = errors.New("the demo did not stop within 3 minutes of SIGTERM")
				_ = demo.Process.Kill()
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })

	// Follow the demo's output: its cluster's id and the four URLs.
	var mu sync.Mutex
	var output []string
	found := map[string]string{}
	ready := make(chan struct{})
	lineRE := map[string]*regexp.Regexp{
		"dir":        regexp.MustCompile(`localcluster: directory (/\S+/localcluster-([0-9a-f]{6})-\S+)`),
		"storefront": regexp.MustCompile(`^storefront: (http://127\.0\.0\.1:\d+/)$`),
		"jaeger":     regexp.MustCompile(`^jaeger: (http://127\.0\.0\.1:\d+/)$`),
		"prometheus": regexp.MustCompile(`^prometheus: (http://127\.0\.0\.1:\d+/\S*)$`),
		// The last line printed.
		"alertmanager": regexp.MustCompile(`^alertmanager: (http://127\.0\.0\.1:\d+/)$`),
	}
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			line := s.Text()
			mu.Lock()
			output = append(output, line)
			for k, re := range lineRE {
				if m := re.FindStringSubmatch(line); m != nil {
					found[k] = m[1]
					if k == "dir" {
						found["id"] = m[2]
					}
				}
			}
			if found["alertmanager"] != "" && found["dir"] != "" {
				select {
				case <-ready:
				default:
					close(ready)
				}
			}
			mu.Unlock()
		}
	}()
	dump := func() string {
		mu.Lock()
		defer mu.Unlock()
		n := len(output)
		return strings.Join(output[max(0, n-40):], "\n")
	}
	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		t.Fatalf("the demo exited (%v) before printing its URLs:\n%s", err, dump())
	case <-ctx.Done():
		t.Fatalf("the demo printed no URLs in time:\n%s", dump())
	}
	mu.Lock()
	storefront, jaeger, id, dir := found["storefront"], found["jaeger"], found["id"], found["dir"]
	prometheus, alertmanager := found["prometheus"], found["alertmanager"]
	mu.Unlock()
	t.Logf("demo: cluster %s, storefront %s, jaeger %s", id, storefront, jaeger)

	if body := httpGet(t, ctx, storefront); !strings.Contains(body, `action="/cart/add"`) {
		t.Errorf("the demo's storefront home page lists no product to add:\n%.400s", body)
	}
	if body := httpGet(t, ctx, jaeger); !strings.Contains(strings.ToLower(body), "jaeger") {
		t.Errorf("the demo's Jaeger URL does not serve the Jaeger UI:\n%.400s", body)
	}
	// --monitoring: Prometheus' targets and Alertmanager's UI.
	if body := httpGet(t, ctx, prometheus); !strings.Contains(body, `"activeTargets"`) {
		t.Errorf("the demo's Prometheus URL does not list scrape targets:\n%.400s", body)
	}
	if body := httpGet(t, ctx, alertmanager); !strings.Contains(body, "Alertmanager") {
		t.Errorf("the demo's Alertmanager URL does not serve its UI:\n%.400s", body)
	}

	stopped := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("after SIGTERM: %v:\n%s", err, dump())
	}
	t.Logf("demo stopped %s after SIGTERM", time.Since(stopped).Round(100*time.Millisecond))
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the demo's cluster directory %s is still there (%v)", dir, err)
	}
	if left := before.Leftovers(localcluster.SnapshotHost(), id); len(left) > 0 {
		t.Errorf("the demo left behind on the host:\n  %s", strings.Join(left, "\n  "))
	}
	if _, err := httpBody(ctx, storefront); err == nil {
		t.Errorf("the demo's storefront %s still answers after it stopped", storefront)
	}
}
