package cli_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
)

// createShop creates a namespace and a Shop in it, and returns the Shop.
func createShop(t *testing.T, ns, name string, spec shopv1.ShopSpec) *shopv1.Shop {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	shop := &shopv1.Shop{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	if err := env.Client.Create(ctx, shop); err != nil {
		t.Fatal(err)
	}
	return shop
}

// owned returns metadata of a child of shop, labelled and owned as the
// operator does it.
func owned(shop *shopv1.Shop, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: shop.Namespace,
		Labels: map[string]string{render.LabelShop: shop.Name, render.LabelComponent: component},
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: shopv1.GroupVersion.String(), Kind: "Shop", Name: shop.Name, UID: shop.UID, Controller: ptr.To(true),
		}},
	}
}

func deployment(meta metav1.ObjectMeta) *appsv1.Deployment {
	labels := map[string]string{"app": meta.Name}
	return &appsv1.Deployment{
		ObjectMeta: meta,
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/shopplatform/shopd:test"}}},
			},
		},
	}
}

func TestStatusTree(t *testing.T) {
	ctx := context.Background()
	shop := createShop(t, "status", "demo", shopv1.ShopSpec{})
	other := &shopv1.Shop{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "status"}}
	if err := env.Client.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	// A ready Deployment (status as the deployment controller would write it)
	// with a ReplicaSet it owns, a Deployment still rolling out, a Service,
	// a ConfigMap; and objects that are not the Shop's.
	ready := deployment(owned(shop, "demo-frontend", "frontend"))
	rolling := deployment(owned(shop, "demo-catalog", "catalog"))
	svc := &corev1.Service{ObjectMeta: owned(shop, "demo-frontend", "frontend"), Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}}}
	cm := &corev1.ConfigMap{ObjectMeta: owned(shop, "demo-settings", "settings")}
	otherCM := &corev1.ConfigMap{ObjectMeta: owned(other, "other-settings", "settings")}
	unlabelled := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "demo-unrelated", Namespace: "status"}}
	for _, obj := range []client.Object{ready, rolling, svc, cm, otherCM, unlabelled} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	ready.Status = appsv1.DeploymentStatus{
		ObservedGeneration: ready.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}, {Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"}},
	}
	if err := env.Client.Status().Update(ctx, ready); err != nil {
		t.Fatal(err)
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: owned(shop, "demo-frontend-5d9c7", "frontend"),
		Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Selector: ready.Spec.Selector, Template: ready.Spec.Template},
	}
	rs.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: ready.Name, UID: ready.UID, Controller: ptr.To(true)}}
	if err := env.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}

	res := run(t, "kubectl-shop", "", "status", "demo", "--kubeconfig", kubeconfig(t, env.Config, "status"))
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	t.Logf("\n%s", res.stdout)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	want := []struct{ name, ready, status string }{
		{"Shop/demo", "False", "InProgress"}, // the operator has not reconciled it
		{"├─ConfigMap/demo-settings", "-", "Current"},
		{"├─Deployment/demo-catalog", "False", "InProgress"},
		{"├─Deployment/demo-frontend", "True", "Current"},
		{"│ └─ReplicaSet/demo-frontend-5d9c7", "False", "InProgress"},
		{"└─Service/demo-frontend", "True", "Current"},
	}
	if len(lines) != len(want)+1 {
		t.Fatalf("got %d lines, want a header and %d objects", len(lines), len(want))
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NAMESPACE NAME READY STATUS AGE MESSAGE" {
		t.Errorf("header %q", lines[0])
	}
	for i, w := range want {
		line := lines[i+1]
		at := strings.Index(line, w.name)
		f := strings.Fields(line[max(at, 0)+len(w.name):])
		if !strings.HasPrefix(line, "status ") || at < 0 || len(f) < 2 || f[0] != w.ready || f[1] != w.status {
			t.Errorf("line %d = %q, want namespace status, %s, ready %s, status %s", i+1, lines[i+1], w.name, w.ready, w.status)
		}
	}
	if strings.Contains(res.stdout, "other-settings") || strings.Contains(res.stdout, "demo-unrelated") {
		t.Error("status shows objects that are not the Shop's")
	}

	// Once the operator reports the Shop Ready for its generation, so does status.
	shop.Status.ObservedGeneration = shop.Generation
	shop.Status.Conditions = []metav1.Condition{{Type: shopv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Reconciled", Message: "all ready", LastTransitionTime: metav1.Now()}}
	if err := env.Client.Status().Update(ctx, shop); err != nil {
		t.Fatal(err)
	}
	again := run(t, "kubectl-shop", "", "status", "demo", "--kubeconfig", kubeconfig(t, env.Config, "status"))
	if f := strings.Fields(strings.Split(again.stdout, "\n")[1]); len(f) < 4 || f[1] != "Shop/demo" || f[2] != "True" || f[3] != "Current" {
		t.Errorf("reconciled Shop: %q, want it True and Current", strings.Split(again.stdout, "\n")[1])
	}

	// Namespace from the flag, a Shop that does not exist.
	missing := run(t, "shopctl", "", "status", "nope", "-n", "status", "--kubeconfig", kubeconfig(t, env.Config, "default"))
	if missing.code != 1 || !strings.Contains(missing.stderr, `shop status/nope`) || !strings.Contains(missing.stderr, "not found") {
		t.Errorf("missing Shop: exit %d, stderr %q", missing.code, missing.stderr)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	shop := createShop(t, "open", "demo", shopv1.ShopSpec{
		Observability: shopv1.ObservabilitySpec{
			Jaeger:  shopv1.JaegerSpec{Enabled: ptr.To(true), Mode: shopv1.BackendDeploy},
			Grafana: shopv1.GrafanaSpec{Dashboards: ptr.To(true), Folder: "Shop demo"},
		},
	})
	kc := kubeconfig(t, env.Config, "open")

	before := run(t, "kubectl-shop", "", "open", "demo", "--kubeconfig", kc)
	if before.code != 0 {
		t.Fatalf("exit %d: %s", before.code, before.stderr)
	}
	for _, want := range []string{
		"Storefront: - not reported yet",
		"Jaeger:     - enabled, but its Service is not there yet",
		`Grafana:    - no Grafana found (a Service labelled app.kubernetes.io/name=grafana); the dashboards wait in ConfigMaps for Grafana's sidecar, folder "Shop demo"`,
	} {
		if !strings.Contains(before.stdout, want) {
			t.Errorf("before reconcile, stdout\n%s\nlacks %q", before.stdout, want)
		}
	}

	shop.Status.URL = "https://shop.example.com"
	if err := env.Client.Status().Update(ctx, shop); err != nil {
		t.Fatal(err)
	}
	jaeger := &corev1.Service{ObjectMeta: owned(shop, "demo-jaeger", "jaeger"), Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "grpc-otlp", Port: 4317}, {Name: "http-ui", Port: 16686},
	}}}
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "monitoring"}}); err != nil {
		t.Fatal(err)
	}
	grafana := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kps-grafana", Namespace: "monitoring", Labels: map[string]string{"app.kubernetes.io/name": "grafana"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http-web", Port: 80}}},
	}
	for _, obj := range []client.Object{jaeger, grafana} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	after := run(t, "shopctl", "", "open", "demo", "--kubeconfig", kc)
	if after.code != 0 {
		t.Fatalf("exit %d: %s", after.code, after.stderr)
	}
	t.Logf("\n%s", after.stdout)
	for _, want := range []string{
		"Storefront: https://shop.example.com\n",
		"Jaeger:     http://demo-jaeger.open.svc:16686\n",
		"kubectl port-forward -n open svc/demo-jaeger 16686, then http://localhost:16686",
		"Grafana:    http://kps-grafana.monitoring.svc:80/dashboards?query=Shop+demo\n",
		"kubectl port-forward -n monitoring svc/kps-grafana 3000:80",
	} {
		if !strings.Contains(after.stdout, want) {
			t.Errorf("stdout\n%s\nlacks %q", after.stdout, want)
		}
	}
}

func TestValidateAgainstTheCluster(t *testing.T) {
	ctx := context.Background()
	shop := createShop(t, "validate-cluster", "db", shopv1.ShopSpec{
		Databases: shopv1.Databases{Orders: shopv1.DatabaseSpec{Managed: &shopv1.ManagedDatabase{Version: "16"}}},
	})
	kc := kubeconfig(t, env.Config, "default")
	change := func(version string) string {
		return "apiVersion: commerce.shopplatform.io/v1alpha1\nkind: Shop\nmetadata: {name: db, namespace: " + shop.Namespace + "}\nspec: {databases: {orders: {managed: {version: \"" + version + "\"}}}}\n"
	}
	refused := run(t, "kubectl-shop", change("17"), "validate", "-f", "-", "--cluster", "--kubeconfig", kc)
	if refused.code != 1 || !strings.Contains(refused.stderr, "version is immutable") {
		t.Errorf("upgrade in place: exit %d, stderr %q", refused.code, refused.stderr)
	}
	// The cluster agrees.
	live := shop.DeepCopy()
	live.Spec.Databases.Orders.Managed.Version = "17"
	if err := env.Client.Update(ctx, live); err == nil || !strings.Contains(err.Error(), "version is immutable") {
		t.Errorf("the API server: %v", err)
	}
	same := run(t, "kubectl-shop", change("16")+"---\n"+strings.ReplaceAll(change("17"), "name: db", "name: fresh"), "validate", "-f", "-", "--cluster", "--kubeconfig", kc)
	if same.code != 0 || same.stdout != "shop/db is valid\nshop/fresh is valid\n" {
		t.Errorf("unchanged and new Shops: exit %d, stdout %q, stderr %q", same.code, same.stdout, same.stderr)
	}
}
