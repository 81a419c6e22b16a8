package live

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/localcluster"
	"github.com/shopplatform/shop-operator/internal/podreason"
	"github.com/shopplatform/shop-operator/internal/policytest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// probeIdentity is a pod that opens connections: the labels of one of the
// Shop's workloads (its pod template's), or of nobody.
type probeIdentity struct {
	name   string
	ns     string
	labels map[string]string
}

// probeTarget is one TCP port of a Service and the pod behind it.
type probeTarget struct {
	name      string // <service>:<port name>
	addr      string // <cluster IP>:<port>, or <pod IP>:<pod port> for a headless Service
	podLabels map[string]string
	podPort   int // the pod's port, which NetworkPolicies see
}

// networkPoliciesAreEnforced: from a pod of each identity (every Deployment
// and CronJob of the namespace, as its pod template labels it; a pod of the
// namespace without labels; pods in another namespace and in the monitoring
// namespace) to every pod port behind a TCP port of a Service of the
// namespace (the five services, the databases, the collector, Jaeger, the
// Loki stand-in), a real connection through kube-proxy and the node's
// enforcer. The expectation of each pair
// is the NetworkPolicies the cluster holds, evaluated by policytest, the
// evaluator the mesh builder's tests check against the intended table: every
// allowed pair connects, every denied one times out or is refused.
func networkPoliciesAreEnforced(t *testing.T, ctx context.Context, s *liveShop) {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	start := time.Now()
	ns := s.ns
	ids := probeIdentities(t, ctx, ns)
	targets := probeTargets(t, ctx, ns)
	var nps networkingv1.NetworkPolicyList
	if err := k8s.List(ctx, &nps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	nsLabels := map[string]map[string]string{}
	for _, id := range ids {
		n, err := cs.CoreV1().Namespaces().Get(ctx, id.ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nsLabels[id.ns] = n.Labels
	}

	// The intent, checked in-process, holds for these very objects: payment
	// admits only orders; databases only their service and backup job. A
	// cluster without these policies would pass the comparison vacuously.
	want := func(id probeIdentity, tg probeTarget) bool {
		ok, err := policytest.NetworkAllows(nps.Items,
			policytest.Pod{Namespace: ns, Labels: tg.podLabels}, tg.podPort,
			policytest.Pod{Namespace: id.ns, NamespaceLabels: nsLabels[id.ns], Labels: id.labels})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	sanity := 0
	for _, tg := range targets {
		comp := tg.podLabels["app.kubernetes.io/component"]
		for _, id := range ids {
			idComp := id.labels["app.kubernetes.io/component"]
			if id.ns != ns {
				idComp = ""
			}
			if tg.podPort == render.HTTPPort && comp == render.Payment && want(id, tg) != (idComp == render.Orders) {
				t.Errorf("the cluster's NetworkPolicies admit %s to payment's API port: %v, the intent is orders only", id.name, want(id, tg))
			}
			if svc, ok := strings.CutSuffix(comp, "-db"); ok && tg.podPort == render.PostgresPort {
				sanity++
				if want(id, tg) != slices.Contains(mesh.DatabaseClientComponents(svc), idComp) {
					t.Errorf("the cluster's NetworkPolicies admit %s to %s: %v, the intent is %v only", id.name, tg.name, want(id, tg), mesh.DatabaseClientComponents(svc))
				}
			}
		}
	}
	if sanity == 0 || len(nps.Items) == 0 {
		t.Fatalf("no database target (%d) or no NetworkPolicy (%d) in %s", sanity, len(nps.Items), ns)
	}

	// One idle pod per identity, all started at once; once every one runs
	// (and the enforcer has had a moment to learn their addresses), the
	// probe runs in them, probeParallel at a time, through kubectl exec. Every connect is
	// bounded, and what failed is tried once more: the enforcer decides in
	// user space, and on a busy node a first packet is sometimes lost. An
	// admitted pair must connect at one attempt, a denied one at neither
	// (a denial is tried twice as well).
	var addrs []string
	for _, tg := range targets {
		addrs = append(addrs, tg.addr)
	}
	probing := time.Now()
	pods := make([]string, len(ids))
	var slowestStart time.Duration
	var mu sync.Mutex
	forEach(t, len(ids), len(ids), func(i int) error {
		var err error
		var started time.Duration
		pods[i], started, err = startProbePod(t, ctx, i, ids[i])
		mu.Lock()
		slowestStart = max(slowestStart, started)
		mu.Unlock()
		return err
	})
	podsStarted := time.Since(probing)
	time.Sleep(2 * time.Second)
	results := make([][]attempts, len(ids))
	forEach(t, len(ids), probeParallel, func(i int) error {
		var err error
		results[i], err = probeFrom(ctx, ids[i], pods[i], addrs)
		return err
	})
	probeTime := time.Since(probing)

	allowed, denied, bad, second := 0, 0, 0, 0
	for i, id := range ids {
		var reached []string
		for j, tg := range targets {
			w, got := want(id, tg), results[i][j]
			if w {
				allowed++
			} else {
				denied++
			}
			if got.connected() {
				reached = append(reached, tg.name)
				if got.first != "connected" {
					second++
				}
			}
			switch {
			case w && !got.connected():
				bad++
				t.Errorf("%s -> %s (%s, pod port %d): the policies admit it, the connection %s", id.name, tg.name, tg.addr, tg.podPort, got)
			case !w && got.connected():
				bad++
				t.Errorf("%s -> %s (%s, pod port %d): the policies deny it, the connection %s", id.name, tg.name, tg.addr, tg.podPort, got)
			}
		}
		t.Logf("%s (%s) reached %d of %d: %s", id.name, id.ns, len(reached), len(targets), strings.Join(reached, " "))
	}
	// Nothing outside the Shop's workloads reaches payment on any port,
	// but Prometheus's namespace its admin port (metrics).
	for i, id := range ids {
		if id.labels != nil {
			continue
		}
		for j, tg := range targets {
			if tg.podLabels["app.kubernetes.io/component"] != render.Payment || !results[i][j].connected() {
				continue
			}
			if slices.Contains(mesh.MonitoringNamespaces, id.ns) && tg.podPort == render.AdminPort {
				continue
			}
			t.Errorf("%s (%s) reached %s: nothing outside the Shop's workloads may", id.name, id.ns, tg.name)
		}
	}
	t.Logf("%d identities x %d targets = %d pairs: %d allowed, %d denied, %d disagree with the policies (%d connected at the second attempt only); %d probe pods running %s after their creation (the slowest %s), the probes done %s later, the step %s",
		len(ids), len(targets), len(ids)*len(targets), allowed, denied, bad, second, len(ids),
		podsStarted.Round(100*time.Millisecond), slowestStart.Round(100*time.Millisecond),
		(probeTime - podsStarted).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))

	// Defense in depth: with Istio the mesh builder renders NetworkPolicies
	// for the services too. This cluster serves no Istio, so the Shop runs
	// in the NetworkPolicy mode; payment's and the databases' policies of
	// the Istio mode, evaluated for the same pairs, must give what the node
	// just did: a pod outside the mesh (outsider, another namespace) does
	// not reach payment at all, whatever the mode.
	in := rendertest.InputFor(s.shop, render.APIs{Istio: true, OpenTelemetryOperator: true})
	objs, err := mesh.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	var istioNPs []networkingv1.NetworkPolicy
	for _, o := range objs {
		if np, ok := o.(*networkingv1.NetworkPolicy); ok {
			istioNPs = append(istioNPs, *np)
		}
	}
	compared := 0
	for j, tg := range targets {
		comp := tg.podLabels["app.kubernetes.io/component"]
		if comp != render.Payment && !strings.HasSuffix(comp, "-db") {
			continue
		}
		for i, id := range ids {
			w, err := policytest.NetworkAllows(istioNPs,
				policytest.Pod{Namespace: ns, Labels: tg.podLabels}, tg.podPort,
				policytest.Pod{Namespace: id.ns, NamespaceLabels: nsLabels[id.ns], Labels: id.labels})
			if err != nil {
				t.Fatal(err)
			}
			compared++
			if got := results[i][j]; w != got.connected() {
				t.Errorf("Istio mode: %s -> %s: its NetworkPolicies admit it: %v; on the node the connection %s", id.name, tg.name, w, got)
			}
		}
	}
	t.Logf("Istio mode: %d NetworkPolicies rendered, %d pairs to payment and the databases agree with the node", len(istioNPs), compared)
}

// probeIdentities: every Deployment's and CronJob's pod template labels in
// ns, an unlabelled pod of ns, and unlabelled pods in another namespace and
// in the monitoring namespace (which the policies admit to admin ports).
func probeIdentities(t *testing.T, ctx context.Context, ns string) []probeIdentity {
	t.Helper()
	var out []probeIdentity
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		out = append(out, probeIdentity{name: identityName(d.Spec.Template.Labels, d.Name), ns: ns, labels: d.Spec.Template.Labels})
	}
	cjs, err := cs.BatchV1().CronJobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cjs.Items {
		l := c.Spec.JobTemplate.Spec.Template.Labels
		out = append(out, probeIdentity{name: identityName(l, c.Name), ns: ns, labels: l})
	}
	out = append(out, probeIdentity{name: "outsider", ns: ns})
	for _, other := range []string{"netpol-elsewhere", mesh.MonitoringNamespaces[0]} {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, other, metav1.GetOptions{}); err != nil {
			mustCreate(t, ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}})
			t.Cleanup(func() {
				_ = cs.CoreV1().Namespaces().Delete(context.Background(), other, metav1.DeleteOptions{})
			})
		}
		out = append(out, probeIdentity{name: "pod in " + other, ns: other})
	}
	return out
}

func identityName(l map[string]string, fallback string) string {
	if c := l["app.kubernetes.io/component"]; c != "" {
		return c
	}
	return fallback
}

// probeTargets: every TCP port of every Service of ns, and the labels and
// port of one ready pod behind it; through the cluster IP (kube-proxy), or
// the pod's own address for a headless Service (the databases').
func probeTargets(t *testing.T, ctx context.Context, ns string) []probeTarget {
	t.Helper()
	svcs, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Services with a cluster IP first: a pod's port behind several Services
	// (the collector's, with and without a cluster IP) is probed once, as
	// the policies see one pod and port. Connecting to the same pod and port
	// through a cluster IP and directly at once could also pick the same
	// source port for both, which conntrack cannot keep apart after DNAT.
	headless := func(svc corev1.Service) bool {
		return svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone
	}
	slices.SortStableFunc(svcs.Items, func(a, b corev1.Service) int {
		switch {
		case headless(a) == headless(b):
			return 0
		case headless(a):
			return 1
		default:
			return -1
		}
	})
	var out []probeTarget
	seen := map[string]bool{}
	for _, svc := range svcs.Items {
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		headless := headless(svc)
		eps, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name})
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range svc.Spec.Ports {
			if sp.Protocol != corev1.ProtocolTCP {
				continue
			}
			pod, ip, port := endpointOf(eps.Items, sp.Name)
			if pod == "" {
				t.Logf("no ready endpoint for %s:%s, not probed", svc.Name, sp.Name)
				continue
			}
			if key := pod + ":" + strconv.Itoa(port); seen[key] {
				continue
			} else {
				seen[key] = true
			}
			p, err := cs.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			addr := net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(sp.Port)))
			if headless {
				addr = net.JoinHostPort(ip, strconv.Itoa(port))
			}
			out = append(out, probeTarget{
				name:      svc.Name + ":" + sp.Name,
				addr:      addr,
				podLabels: p.Labels,
				podPort:   port,
			})
		}
	}
	return out
}

// endpointOf: the name, address and port of a ready pod behind a port.
func endpointOf(eps []discoveryv1.EndpointSlice, portName string) (string, string, int) {
	for _, es := range eps {
		for _, p := range es.Ports {
			if ptr.Deref(p.Name, "") != portName || p.Port == nil {
				continue
			}
			for _, e := range es.Endpoints {
				if ptr.Deref(e.Conditions.Ready, false) && e.TargetRef != nil && e.TargetRef.Kind == "Pod" && len(e.Addresses) > 0 {
					return e.TargetRef.Name, e.Addresses[0], int(*p.Port)
				}
			}
		}
	}
	return "", "", 0
}

// probeParallel bounds the probes running at once: each opens a connection
// to every target at once (25 of them), and the enforcer decides on every
// first packet in user space, on the node's two cores.
const probeParallel = 8

// forEach runs f for 0..n-1, parallel at a time, and fails the test with
// the first error.
func forEach(t *testing.T, n, parallel int, f func(int) error) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = f(i)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// attempts are the outcomes of the connections to one address: "connected",
// "refused", "timed out" (or nc's words); second is "" when the first
// connected.
type attempts struct{ first, second string }

func (a attempts) connected() bool { return a.first == "connected" || a.second == "connected" }

func (a attempts) String() string {
	if a.second == "" {
		return a.first
	}
	return a.first + ", then " + a.second
}

// probeScript connects to every address given as an argument at once, each
// bounded to 3 s (nc's connect timeout: the first SYN and one retransmit;
// timeout(1) behind it), tries a failed one once more 3 s later, and prints
// "<index> <outcome> | <outcome of the second attempt>".
const probeScript = `try() { if e=$(timeout 5 nc -w 3 "${1%:*}" "${1##*:}" -e true 2>&1); then echo connected; else echo ${e:-timed out}; fi; }
i=0
for a in "$@"; do
  ( r=$(try "$a"); r2=; if [ "$r" != connected ]; then sleep 3; r2=$(try "$a"); fi; echo "$i $r | $r2" ) &
  i=$((i+1))
done
wait
echo done`

// startProbePod starts an idle pod with the identity's labels, deleted when
// the test ends, and returns its name and how long it took from creation to
// its container's start. The pod never becomes ready (its readiness probe
// fails), so a pod with a service's labels never joins that Service's
// endpoints.
func startProbePod(t *testing.T, ctx context.Context, i int, id probeIdentity) (string, time.Duration, error) {
	name := fmt.Sprintf("netpol-probe-%d-%s", i, strings.NewReplacer(" ", "-", ".", "-").Replace(id.name))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	spec := restrictedPod(corev1.Container{
		Name: "probe", Image: localcluster.HelperImage,
		Command: []string{"sleep", "600"}, // bounded, should the deletion fail
		// Never ready: nothing listens on port 1. A TCP probe is the
		// kubelet's own dial; an exec probe would start a process in the
		// container every period, sixteen times over.
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(1)}}, PeriodSeconds: 60},
	})
	spec.RestartPolicy = corev1.RestartPolicyNever
	spec.Containers[0].ImagePullPolicy = corev1.PullNever
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: id.ns, Labels: maps.Clone(id.labels)}, Spec: spec}
	// A namespace made a moment ago may not have its default ServiceAccount yet.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods(id.ns).Create(ctx, pod, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "serviceaccount") {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return "", 0, fmt.Errorf("probe pod for %s: %w", id.name, err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Pods(id.ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	// A loaded node took 81 s to start one of 16 probe pods.
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		pod, err = cs.CoreV1().Pods(id.ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && pod.Status.PodIP != "" && len(pod.Status.ContainerStatuses) == 1 && pod.Status.ContainerStatuses[0].State.Running != nil, nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("probe pod for %s did not start: %s", id.name, podreason.Of(pod))
	}
	return name, pod.Status.ContainerStatuses[0].State.Running.StartedAt.Sub(pod.CreationTimestamp.Time), nil
}

// probeFrom runs the probe in the identity's pod and returns each address's
// outcomes.
func probeFrom(ctx context.Context, id probeIdentity, pod string, addrs []string) ([]attempts, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := append([]string{"--kubeconfig", cluster.KubeconfigPath(), "-n", id.ns, "exec", pod, "--", "sh", "-c", probeScript, "probe"}, addrs...)
	rc, err := exec.CommandContext(ctx, "kubectl", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("the probe in the pod for %s: %w\n%s", id.name, err, rc)
	}
	out := make([]attempts, len(addrs))
	seen := 0
	for _, line := range strings.Split(string(rc), "\n") {
		idx, rest, ok := strings.Cut(line, " ")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || i < 0 || i >= len(addrs) {
			continue
		}
		first, second, _ := strings.Cut(rest, " | ")
		out[i] = attempts{outcome(first), outcome(second)}
		seen++
	}
	if !strings.Contains(string(rc), "done") || seen != len(addrs) {
		return nil, fmt.Errorf("the probe in the pod for %s: %d of %d results:\n%s", id.name, seen, len(addrs), rc)
	}
	return out, nil
}

// outcome shortens nc's words.
func outcome(s string) string {
	s = strings.TrimSpace(s)
	switch {
	case s == "", s == "connected":
		return s
	case strings.Contains(s, "refused"):
		return "refused"
	case strings.Contains(s, "timed out"), strings.Contains(s, "imeout"):
		return "timed out"
	default:
		return s
	}
}
