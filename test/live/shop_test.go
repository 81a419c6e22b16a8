package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/localstack"
	"github.com/shopplatform/shop-operator/internal/render"
)

const chromiumPath = "/usr/bin/chromium"

// liveShop is the testing Shop that TestShop applies and its steps share.
type liveShop struct {
	shop     *shopv1.Shop
	ns       string
	frontend string // http://<cluster IP>:<port> of the storefront's Service
}

// TestShop applies one testing Shop, waits until every pod of it is Ready,
// and runs in order what a running shop must do; a step may rely on what the
// steps before it did (an order placed, telemetry delivered), and the last
// one deletes the Shop. One Shop for all steps keeps `make test` short: a
// new step goes into the list below, in its own file.
func TestShop(t *testing.T) {
	t.Parallel() // beside TestDemo
	useCluster(t)
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: make test installs Debian's chromium (apt-get install -y chromium)", chromiumPath)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	s := startTestingShop(t, ctx, localstack.Namespace)
	ns, shop := s.ns, s.shop
	// The synthetic checkout runs every five minutes; run it now, as
	// `kubectl create job --from=cronjob/...` would, so that its series
	// exist before the panel step looks for them.
	runCronJobNow(t, ctx, ns, shop.Name+"-synthetic")

	type step struct {
		name string
		run  func(*testing.T, context.Context, *liveShop)
	}
	// Stages run in order; the steps of one stage run at the same time (they
	// wait on different clocks: scrapes and rule evaluations, Alertmanager's
	// configuration reload), which keeps `make test` short.
	stages := [][]step{
		{{"CheckoutIsTracedAndLogged", checkoutIsTracedAndLogged}},
		{{"EveryScrapeTargetIsUp", everyScrapeTargetIsUp}},
		// After the scrape targets: a probe pod with a service's labels is a
		// (never ready) endpoint of its Service, which Prometheus scrapes too.
		{{"EveryPanelAndRuleHasData", everyPanelAndRuleHasData}, {"AlertsAreRoutedGroupedAndInhibited", alertsAreRoutedGroupedAndInhibited}, {"ExemplarsResolveToTraces", exemplarsResolveToTraces}, {"NetworkPoliciesAreEnforced", networkPoliciesAreEnforced}},
		{{"PaymentFaultRaisesTheAlert", paymentFaultRaisesTheAlert}},
		// Alone: the restore pauses the Shop, which the steps that patch it
		// would wait on.
		{{"BackupRestoresIntoTheRunningShop", backupRestoresIntoTheRunningShop}},
		{{"DeleteRemovesPodsKeepsVolumes", deleteRemovesPodsKeepsVolumes}},
	}
	for _, stage := range stages {
		var wg sync.WaitGroup
		for _, st := range stage {
			wg.Go(func() { t.Run(st.name, func(t *testing.T) { st.run(t, ctx, s) }) })
		}
		wg.Wait()
	}
}

// startTestingShop applies the testing Shop (its stand-ins and namespace
// first), scraped every 10 s rather than the profile's 30 s so that rates,
// recording rules and alerts move within the minutes a test has, and waits
// until every pod of it is Ready and the storefront answers.
func startTestingShop(t *testing.T, ctx context.Context, ns string) *liveShop {
	t.Helper()
	shop, err := localstack.ReadShop("testing")
	if err != nil {
		t.Fatal(err)
	}
	shop.Namespace = ns
	shop.Spec.Observability.Prometheus.ScrapeInterval = "10s"
	for _, l := range localstack.LocalOverrides(shop, ns) {
		t.Logf("local override: %s", l)
	}
	mustCreate(t, ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	for _, o := range localstack.StandIns(ns) {
		mustCreate(t, ctx, o)
	}
	applied := time.Now()
	mustCreate(t, ctx, shop)
	if err := localstack.WaitShop(ctx, k8s, cs, shop, 12*time.Minute, t.Logf); err != nil {
		t.Fatal(err)
	}
	t.Logf("Shop %s Ready, every pod Ready, %s after kubectl apply", shop.Name, time.Since(applied).Round(time.Second))
	s := &liveShop{shop: shop, ns: ns, frontend: serviceURL(t, ctx, ns, shop.Name+"-"+render.Frontend, "http")}
	waitHTTP(t, ctx, s.frontend+"/")
	return s
}

// runCronJobNow creates a Job from the CronJob's template, owned by it, as
// `kubectl create job --from=cronjob/<name>` does.
func runCronJobNow(t *testing.T, ctx context.Context, ns, name string) {
	t.Helper()
	cj := &batchv1.CronJob{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cj); err != nil {
		t.Fatal(err)
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-now", Namespace: ns,
			Labels:          cj.Spec.JobTemplate.Labels,
			Annotations:     map[string]string{"cronjob.kubernetes.io/instantiate": "manual"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
		},
		Spec: cj.Spec.JobTemplate.Spec,
	}
	mustCreate(t, ctx, job)
}

// checkoutIsTracedAndLogged is the platform's main test: a shopper in
// Chromium registers, logs in, adds two products and checks out through the
// deployed storefront, reached through the cluster's own Service networking;
// the order is confirmed in the orders database; the collector's log
// pipeline delivers the orders service's "order confirmed" record, whose
// trace id Jaeger (deployed by the Shop) resolves to a trace with the server
// spans of frontend, orders, catalog and payment and the database query
// spans of catalog and orders.
func checkoutIsTracedAndLogged(t *testing.T, ctx context.Context, s *liveShop) {
	shop, ns := s.shop, s.ns
	orderID := shopperChecksOut(t, ctx, s.frontend)
	t.Logf("order %s placed through %s", orderID, s.frontend)

	// The order is confirmed in the orders database, with both items.
	row := psql(t, ctx, ns, shop.Name+"-orders-db", "orders",
		fmt.Sprintf("select status, jsonb_array_length(items) from orders where id = '%s'", orderID))
	if row != "confirmed|2" {
		t.Fatalf("orders database: status|items = %q, want confirmed|2", row)
	}

	// The orders service's log record of the confirmation, as the collector's
	// log pipeline delivered it (to the Loki stand-in), carries the trace id.
	traceID := waitLogTrace(t, ctx, ns, orderID)
	t.Logf("log record \"order confirmed\" order_id=%s trace_id=%s", orderID, traceID)

	// Jaeger resolves that trace id to the whole checkout.
	jaeger := serviceURL(t, ctx, ns, shop.Name+"-jaeger", "http-ui")
	checkTrace(t, ctx, jaeger, traceID)

	// Figures for docs/local-cluster.md (measured, never asserted).
	logMemory(t, ctx, ns)
	logMemory(t, ctx, "kube-system", "local-path-storage", localstack.OtelOperatorNamespace, localstack.ShopOperatorNamespace)
}

// deleteRemovesPodsKeepsVolumes: deleting the Shop removes every pod of it;
// the volumes that hold data (the databases' and their backups', which the
// Shop does not own) stay, the others (Jaeger's traces) go with it.
func deleteRemovesPodsKeepsVolumes(t *testing.T, ctx context.Context, s *liveShop) {
	shop, ns := s.shop, s.ns
	claimsBefore := shopClaims(t, ctx, ns, shop.Name, true)
	if len(claimsBefore) < 6 {
		t.Fatalf("retained claims of the testing Shop: %v, want the three databases' and their backups'", claimsBefore)
	}
	if err := k8s.Delete(ctx, shop); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := localstack.ShopPods(ctx, cs, shop)
		return err == nil && len(pods) == 0, nil
	})
	if err != nil {
		pods, _ := localstack.ShopPods(ctx, cs, shop)
		t.Fatalf("%d pods of the Shop left 5 minutes after it was deleted", len(pods))
	}
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		return slices.Equal(shopClaims(t, ctx, ns, shop.Name, false), claimsBefore), nil
	})
	if err != nil {
		t.Fatalf("claims after deleting the Shop %v, want the retained %v", shopClaims(t, ctx, ns, shop.Name, false), claimsBefore)
	}
}

// serviceURL is http://<cluster IP>:<port> of a Service's named port.
func serviceURL(t *testing.T, ctx context.Context, ns, name, port string) string {
	t.Helper()
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == port {
			return "http://" + net.JoinHostPort(svc.Spec.ClusterIP, fmt.Sprint(p.Port))
		}
	}
	t.Fatalf("Service %s/%s has no port %q", ns, name, port)
	return ""
}

// shopperChecksOut registers, logs out and in again, adds two products from
// the home page and pays; it returns the order id.
func shopperChecksOut(t *testing.T, ctx context.Context, base string) string {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	bctx, cancel := context.WithTimeout(bctx, 5*time.Minute)
	defer cancel()
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("shopper: %s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("shopper: read %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	// submit runs a step that ends on a new page: want, or the storefront's
	// error page (role="alert"), whose text is then in the failure. On a
	// starved CPU a backend can time out (the auth service hashes
	// passwords) and the storefront answers with its error page: a step
	// that may be repeated is tried again, up to three times.
	submit := func(what, want string, tries int, actions func() []chromedp.Action[chromedp.Void]) {
		t.Helper()
		for try := 1; ; try++ {
			do(what, append(actions(), chromedp.WaitVisible(chromedp.CSS(want+", [role=alert]")))...)
			alert, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.querySelector("[role=alert]") || {}).innerText || ""`))
			if err != nil {
				t.Fatalf("shopper: %s: %v", what, err)
			}
			if alert == "" {
				return
			}
			if try >= tries {
				t.Fatalf("shopper: %s: the storefront answered with its error page (attempt %d of %d): %s", what, try, tries, alert)
			}
			t.Logf("shopper: %s: the storefront answered with its error page (attempt %d of %d), again: %s", what, try, tries, alert)
			time.Sleep(2 * time.Second)
		}
	}
	var email string
	const password = "correct horse battery"
	submit("register", ".who", 3, func() []chromedp.Action[chromedp.Void] {
		email = fmt.Sprintf("live-%d@example.com", time.Now().UnixNano()) // a new shopper at each attempt
		return []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(base + "/register"),
			chromedp.WaitVisible(chromedp.CSS("#email")),
			chromedp.SendKeys(chromedp.CSS("#name"), "Ada Shopper"),
			chromedp.SendKeys(chromedp.CSS("#email"), email),
			chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.Click(chromedp.CSS("#register-submit")),
		}
	})
	do("log out", chromedp.Submit(chromedp.CSS(`form[action="/logout"]`)), chromedp.WaitVisible(chromedp.CSS(`a[href="/login"]`)))
	submit("log in", ".who", 3, func() []chromedp.Action[chromedp.Void] {
		return []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(base + "/login"),
			chromedp.WaitVisible(chromedp.CSS("#email")),
			chromedp.SendKeys(chromedp.CSS("#email"), email),
			chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.Click(chromedp.CSS("#login-submit")),
		}
	})
	if who := text(".who"); !strings.Contains(who, email) {
		t.Fatalf("shopper: after logging in the header says %q", who)
	}
	skus, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("li.card form[action='/cart/add'] input[name=sku]")).map(i => i.value)`))
	if err != nil || len(skus) < 2 {
		t.Fatalf("shopper: the home page lists %d products to add (%v)", len(skus), err)
	}
	for i, sku := range skus[:2] {
		// Once: a retry after an add that did go through would add twice.
		submit("add "+sku, `tr[data-sku="`+sku+`"]`, 1, func() []chromedp.Action[chromedp.Void] {
			return []chromedp.Action[chromedp.Void]{
				chromedp.Navigate(base + "/products/" + sku),
				chromedp.WaitVisible(chromedp.CSS("#add-to-cart")),
				chromedp.Click(chromedp.CSS("#add-to-cart")),
			}
		})
		if n := text("#cart-count"); n != fmt.Sprint(i+1) {
			t.Fatalf("shopper: cart badge %q after %d products", n, i+1)
		}
	}
	submit("check out", "#order-id", 1, func() []chromedp.Action[chromedp.Void] {
		return []chromedp.Action[chromedp.Void]{
			chromedp.Click(chromedp.CSS("#checkout")),
			chromedp.WaitVisible(chromedp.CSS("#cc-number")),
			chromedp.SendKeys(chromedp.CSS("#cc-name"), "Ada Shopper"),
			chromedp.SendKeys(chromedp.CSS("#cc-number"), "4242 4242 4242 4242"),
			chromedp.SendKeys(chromedp.CSS("#cc-exp"), "12/39"),
			chromedp.SendKeys(chromedp.CSS("#cc-cvc"), "123"),
			chromedp.Click(chromedp.CSS("#pay")),
		}
	})
	if h := text("h1"); !strings.Contains(h, "confirmed") {
		t.Fatalf("shopper: confirmation heading %q", h)
	}
	return text("#order-id")
}

// psql runs a query in a managed database's pod (kubectl exec, over the
// pod's Unix socket as the superuser).
func psql(t *testing.T, ctx context.Context, ns, statefulSet, db, query string) string {
	t.Helper()
	// The answer from stdout only: kubectl writes its own warnings to stderr.
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", cluster.KubeconfigPath(), "-n", ns,
		"exec", "statefulset/"+statefulSet, "-c", "postgres", "--",
		"psql", "-X", "-At", "-U", "postgres", "-d", db, "-c", query)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("psql in %s: %v: %s%s", statefulSet, err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// The debug exporter's detailed form of a log record, in the stand-in's log.
var traceIDLine = regexp.MustCompile(`Trace ID: ([0-9a-f]{32})`)

// waitLogTrace waits for the "order confirmed" record of the order in the
// Loki stand-in's output and returns its trace id.
func waitLogTrace(t *testing.T, ctx context.Context, ns, orderID string) string {
	t.Helper()
	var found string
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + localstack.LokiStandIn})
		if err != nil || len(pods.Items) == 0 {
			return false, nil
		}
		// Records are separated by "LogRecord #"; find ours.
		for _, rec := range strings.Split(podLog(t, ctx, ns, pods.Items[0].Name, ""), "LogRecord #") {
			if strings.Contains(rec, "Str(order confirmed)") && strings.Contains(rec, "Str("+orderID+")") {
				if m := traceIDLine.FindStringSubmatch(rec); m != nil {
					found = m[1]
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no \"order confirmed\" log record for order %s with a trace id reached the Loki stand-in within 2 minutes", orderID)
	}
	return found
}

// checkTrace asks Jaeger's query API for the trace until it holds the server
// spans of the four services and the query spans of catalog and orders.
func checkTrace(t *testing.T, ctx context.Context, jaeger, traceID string) {
	t.Helper()
	type tag struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	}
	var missing []string
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var got struct {
			Data []struct {
				Spans []struct {
					ProcessID string `json:"processID"`
					Tags      []tag  `json:"tags"`
				} `json:"spans"`
				Processes map[string]struct {
					ServiceName string `json:"serviceName"`
				} `json:"processes"`
			} `json:"data"`
		}
		body, err := httpBody(ctx, jaeger+"/api/traces/"+traceID)
		if err != nil || json.Unmarshal([]byte(body), &got) != nil || len(got.Data) == 0 {
			missing = []string{"the trace itself"}
			return false, nil
		}
		server, queries := map[string]bool{}, map[string]bool{}
		for _, s := range got.Data[0].Spans {
			svc := got.Data[0].Processes[s.ProcessID].ServiceName
			for _, tg := range s.Tags {
				if tg.Key == "span.kind" && tg.Value == "server" {
					server[svc] = true
				}
				if tg.Key == "db.system.name" || tg.Key == "db.system" {
					queries[svc] = true
				}
			}
		}
		missing = missing[:0]
		for _, svc := range []string{render.Frontend, render.Orders, render.Catalog, render.Payment} {
			if !server[svc] {
				missing = append(missing, svc+" server span")
			}
		}
		for _, svc := range []string{render.Catalog, render.Orders} {
			if !queries[svc] {
				missing = append(missing, svc+" query span")
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		t.Fatalf("Jaeger's trace %s lacks: %s", traceID, strings.Join(missing, ", "))
	}
}

// shopClaims lists the names of the Shop's PersistentVolumeClaims; with
// retainedOnly, those the Shop does not own (garbage collection keeps them).
func shopClaims(t *testing.T, ctx context.Context, ns, shop string, retainedOnly bool) []string {
	t.Helper()
	list := &corev1.PersistentVolumeClaimList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list.Items {
		if !strings.HasPrefix(c.Name, shop+"-") && !strings.Contains(c.Name, "-"+shop+"-") {
			continue
		}
		if retainedOnly && metav1.GetControllerOf(&c) != nil {
			continue
		}
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return names
}

// logMemory logs the working set of every running pod in the namespaces,
// read from the node's cgroups, against their memory requests.
func logMemory(t *testing.T, ctx context.Context, namespaces ...string) {
	t.Helper()
	var ws, req int64
	for _, ns := range namespaces {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
		if err != nil {
			t.Fatal(err)
		}
		mem, err := localstack.MeasureMemory(cluster, pods.Items)
		if err != nil {
			t.Logf("memory: %v", err)
			return
		}
		for _, m := range mem {
			t.Logf("memory %-50s working set %4d MiB, requests %4d MiB", ns+"/"+m.Pod, m.WorkingSet>>20, m.Requests>>20)
			ws += m.WorkingSet
			req += m.Requests
		}
	}
	t.Logf("memory %v: working set %d MiB, requests %d MiB", namespaces, ws>>20, req>>20)
}
