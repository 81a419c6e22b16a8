package localcluster

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// EnvE2E names the environment variable that enables end-to-end tests; the
// Makefile's test target sets it.
const EnvE2E = "SHOP_E2E"

// SkipUnlessE2E skips the test unless $SHOP_E2E is set.
func SkipUnlessE2E(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvE2E) == "" {
		t.Skipf("end-to-end test: set %s=1 to run it (it starts a local cluster from the binaries of hack/kube-binaries.sh cluster; `make test` does this)", EnvE2E)
	}
}

// StartForTest skips the test unless $SHOP_E2E is set, then locates (or
// builds) the binaries, starts a cluster and registers its Stop as a
// cleanup. The cluster's directory (process logs, kubeconfig) is kept when
// the test fails, and its path logged. opts may adjust the Options.
func StartForTest(t testing.TB, opts ...func(*Options)) *Cluster {
	t.Helper()
	SkipUnlessE2E(t)
	ctx := context.Background()
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := dt.Deadline(); ok {
			var cancel context.CancelFunc
			// Leave time for cleanup and a useful failure message.
			ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
			defer cancel()
		}
	}
	w := &testWriter{t: t}
	bin, err := FindBinaries(ctx, w)
	if err != nil {
		t.Fatalf("localcluster: %v", err)
	}
	o := Options{BinDir: bin, Log: w}
	for _, f := range opts {
		f(&o)
	}
	c, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("localcluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.KeepDir()
			t.Logf("localcluster: test failed; logs and kubeconfig kept in %s", c.Dir())
		}
		if err := c.Stop(); err != nil {
			t.Errorf("localcluster: stop: %v", err)
		}
	})
	return c
}

// testWriter turns lines written to it into t.Log calls.
type testWriter struct {
	t   testing.TB
	mu  sync.Mutex
	buf []byte
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
