package controllers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

// The suite runs one real kube-apiserver and etcd and one operator for the
// whole package. There is no kube-controller-manager: tests mark workloads
// ready themselves, and nothing is garbage-collected (test/e2e covers that).
var (
	k8s    client.Client
	writes writeCounter
	// auditLog is the API server's audit log: TestOperatorRoleIsMinimal
	// reads what the operator did with its role, after every test.
	auditLog string
	// adminConfig connects to the suite's API server as its admin.
	adminConfig *rest.Config
)

func TestMain(m *testing.M) {
	// Every log line at every level goes to operatorLog (the data-protection
	// test reads it); stderr shows errors, or everything with SHOP_TEST_VERBOSE.
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapcore.DebugLevel),
		zap.WriteTo(io.MultiWriter(&operatorLog, levelFilter{os.Stderr}))))
	// The third-party CRDs are there from the start, for every test:
	// TestOptionalAPIsAppearLater starts a cluster of its own without them.
	env, err := testenv.Start(testenv.Options{Audit: true, ThirdPartyCRDs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s, auditLog, adminConfig = env.Client, env.AuditLog, env.Config
	stop, err := startOperator(env, ctrl.Options{}, writes.wrap)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	// What reads the whole suite's doing runs after it, explicitly: no test
	// depends on running last, or on the name of its file.
	if wholeSuite() && !afterSuite("TestOperatorRoleIsMinimal", operatorRoleIsMinimal) {
		code = 1
	}
	stop()
	_ = env.Stop()
	os.Exit(code)
}

// startOperator runs an operator against env as its ServiceAccount, with
// exactly the ClusterRole that config/rbac ships (a permission missing there
// fails the tests), its requests going through wrap when set.
func startOperator(env *testenv.Env, opts ctrl.Options, wrap func(http.RoundTripper) http.RoundTripper) (stop func(), err error) {
	cfg, err := asOperator(env)
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		cfg.Wrap(wrap)
	}
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	mgr, err := newManager(cfg, opts, time.Second)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		<-done
	}, nil
}

// operatorLog holds every line the operator logged.
var operatorLog lockedBuffer

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// levelFilter passes error lines only, unless SHOP_TEST_VERBOSE is set.
type levelFilter struct{ w io.Writer }

func (f levelFilter) Write(p []byte) (int, error) {
	if os.Getenv("SHOP_TEST_VERBOSE") != "" || bytes.Contains(p, []byte("\tERROR\t")) {
		return f.w.Write(p)
	}
	return len(p), nil
}

// writeCounter counts the operator's requests that change something: every
// request that is not a read and not a dry run. It also counts every request
// by path (reads and dry runs too), which shows a reconcile in flight.
type writeCounter struct {
	mu     sync.Mutex
	byKey  map[string]int
	last   map[string]string // the latest body per key, cut short: what a failure shows
	byPath map[string]int
	total  atomic.Int64
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		w.mu.Lock()
		if w.byPath == nil {
			w.byPath = map[string]int{}
		}
		w.byPath[req.URL.Path]++
		w.mu.Unlock()
		if req.Method != http.MethodGet && req.URL.Query().Get("dryRun") == "" {
			w.total.Add(1)
			w.mu.Lock()
			if w.byKey == nil {
				w.byKey = map[string]int{}
			}
			key := req.Method + " " + req.URL.Path
			w.byKey[key]++
			if w.last == nil {
				w.last = map[string]string{}
			}
			w.last[key] = requestBody(req)
			w.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// requestsUnder counts the requests, of any kind, to paths containing part.
func (w *writeCounter) requestsUnder(part string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for path, v := range w.byPath {
		if strings.Contains(path, part) {
			n += v
		}
	}
	return n
}

// lastBody is the body of the latest write with that key.
func (w *writeCounter) lastBody(key string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[key]
}

// requestBody reads a copy of the request's body (client-go's requests can
// replay theirs), at most 2 KiB of it.
func requestBody(req *http.Request) string {
	if req.GetBody == nil {
		return ""
	}
	body, err := req.GetBody()
	if err != nil {
		return ""
	}
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, 2048))
	return string(b)
}

func (w *writeCounter) snapshot() (int64, map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]int{}
	for k, v := range w.byKey {
		m[k] = v
	}
	return w.total.Load(), m
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// cluster is the client of one test API server: the suite's (k8s), or one a
// test starts for itself.
type cluster struct{ k8s client.Client }

// suite is the suite's API server.
func suite() cluster { return cluster{k8s} }

func namespace(t *testing.T) string { t.Helper(); return suite().namespace(t) }

func getShop(t *testing.T, ns, name string) *shopv1.Shop {
	t.Helper()
	return suite().getShop(t, ns, name)
}

func waitCondition(t *testing.T, ns, name, cond string, want metav1.ConditionStatus) *shopv1.Shop {
	t.Helper()
	return suite().waitCondition(t, ns, name, cond, want)
}

// namespace creates a fresh namespace for one test.
func (c cluster) namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + fmt.Sprintf("-%d", time.Now().UnixNano()%100000)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

func newShop(ns, name string, spec shopv1.ShopSpec) *shopv1.Shop {
	return &shopv1.Shop{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

// eventually polls cond every 100ms for up to 60s.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last: %s", what, last)
}

// getShop reads a Shop.
func (c cluster) getShop(t *testing.T, ns, name string) *shopv1.Shop {
	t.Helper()
	s := &shopv1.Shop{}
	if err := c.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// condition returns a Shop condition ("" when absent).
func condition(s *shopv1.Shop, t string) (metav1.ConditionStatus, string, string) {
	c := meta.FindStatusCondition(s.Status.Conditions, t)
	if c == nil {
		return "", "", ""
	}
	return c.Status, c.Reason, c.Message
}

// waitCondition waits until the Shop reports condition t with status want at
// its current generation.
func (c cluster) waitCondition(t *testing.T, ns, name, cond string, want metav1.ConditionStatus) *shopv1.Shop {
	t.Helper()
	var s *shopv1.Shop
	eventually(t, fmt.Sprintf("%s=%s on %s/%s", cond, want, ns, name), func() (bool, string) {
		s = c.getShop(t, ns, name)
		st, reason, msg := condition(s, cond)
		c := meta.FindStatusCondition(s.Status.Conditions, cond)
		ok := st == want && c != nil && c.ObservedGeneration == s.Generation && s.Status.ObservedGeneration == s.Generation
		return ok, fmt.Sprintf("%s %s: %s (generation %d, observed %d)", st, reason, msg, s.Generation, s.Status.ObservedGeneration)
	})
	return s
}

// markWorkloadsReady plays kube-controller-manager: it reports every
// Deployment and StatefulSet of the Shop as fully rolled out.
func markWorkloadsReady(t *testing.T, ns, shop string) {
	t.Helper()
	ctx := context.Background()
	sel := client.MatchingLabels{render.LabelShop: shop}
	deps := &appsv1.DeploymentList{}
	sts := &appsv1.StatefulSetList{}
	// Wait until every workload the Shop reports exists: the operator may
	// still be creating them.
	eventually(t, "the workloads of "+shop, func() (bool, string) {
		if err := k8s.List(ctx, deps, client.InNamespace(ns), sel); err != nil {
			return false, err.Error()
		}
		if err := k8s.List(ctx, sts, client.InNamespace(ns), sel); err != nil {
			return false, err.Error()
		}
		want := len(getShop(t, ns, shop).Status.Components)
		have := len(deps.Items) + len(sts.Items)
		return want > 0 && have >= want && len(deps.Items) >= len(render.Services),
			fmt.Sprintf("%d Deployments and %d StatefulSets of %d components", len(deps.Items), len(sts.Items), want)
	})
	for i := range deps.Items {
		d := &deps.Items[i]
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"}},
		}
		if err := k8s.Status().Update(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for i := range sts.Items {
		s := &sts.Items[i]
		n := int32(1)
		if s.Spec.Replicas != nil {
			n = *s.Spec.Replicas
		}
		s.Status = appsv1.StatefulSetStatus{
			ObservedGeneration: s.Generation, Replicas: n, ReadyReplicas: n, CurrentReplicas: n, UpdatedReplicas: n, AvailableReplicas: n,
			CurrentRevision: "r1", UpdateRevision: "r1",
		}
		if err := k8s.Status().Update(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
}

// The operator's identity, as config/rbac and config/manager deploy it.
const (
	operatorNamespace, operatorServiceAccount = "shop-system", "controller-manager"
	operatorUser                              = "system:serviceaccount:" + operatorNamespace + ":" + operatorServiceAccount
)

// asOperator binds config/rbac/role.yaml to the operator's ServiceAccount
// and returns a config that impersonates it.
func asOperator(env *testenv.Env) (*rest.Config, error) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		return nil, err
	}
	ns, sa := operatorNamespace, operatorServiceAccount
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-operator-manager"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}
	ctx := context.Background()
	for _, obj := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	return cfg, nil
}
