// Package upgrade proves that a new operator takes over a Shop rendered by
// the previous version without replacing anything that holds data: the
// databases' StatefulSets and the generated Secrets keep their identity and
// their contents, while the Deployments are updated in place.
package upgrade

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/controllers"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/secrets"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	// Quiet (the manager logs cancelled requests as errors when the test
	// stops it) unless SHOP_TEST_VERBOSE is set.
	level := zapcore.DPanicLevel
	if os.Getenv("SHOP_TEST_VERBOSE") != "" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level)))
	var err error
	env, err = testenv.Start(testenv.Options{ThirdPartyCRDs: true, Audit: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

const (
	// oldTag is the services' image tag the previous operator defaulted to.
	oldTag = "0.0.9"
	// oldMarker is an annotation only the previous version set: the new
	// operator applies under the same field manager, so it must drop it.
	oldMarker = "commerce.shopplatform.io/rendered-by"
)

// key identifies a child across the two versions.
type key struct{ kind, name string }

// renderOld applies the children of shop as the previous operator did:
// server-side apply under fieldManager, with its default image tag and
// freshly generated secrets; preTLS: as the version before database TLS.
func renderOld(t *testing.T, shop *shopv1.Shop, fieldManager string, preTLS bool) {
	t.Helper()
	old := shop.DeepCopy()
	old.Spec.Image.Tag = oldTag // the old default, not something the user set
	in := rendertest.InputFor(old, render.AllAPIs)
	generated, err := secrets.Fill(secrets.For(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	in.Generated = generated
	children, err := engine.Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range children {
		if preTLS && !withoutTLS(u) {
			continue
		}
		u.SetAnnotations(mergeMaps(u.GetAnnotations(), map[string]string{oldMarker: oldTag}))
		if err := env.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
			t.Fatalf("old operator applying %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}

// snapshot reads the live children of kinds that matter for the upgrade.
type snapshot struct {
	uids    map[key]types.UID
	secrets map[string]map[string][]byte
	images  map[string][]string // Deployment name -> container images
	marked  map[key]bool        // still carries oldMarker
}

func take(t *testing.T, ns string) snapshot {
	t.Helper()
	ctx := context.Background()
	s := snapshot{uids: map[key]types.UID{}, secrets: map[string]map[string][]byte{}, images: map[string][]string{}, marked: map[key]bool{}}
	owned := client.MatchingLabels{render.LabelManagedBy: render.ManagedBy}
	for _, kind := range []string{"StatefulSet", "Deployment", "Secret"} {
		list := &unstructured.UnstructuredList{}
		gv := "apps/v1"
		if kind == "Secret" {
			gv = "v1"
		}
		list.SetAPIVersion(gv)
		list.SetKind(kind + "List")
		if err := env.Client.List(ctx, list, client.InNamespace(ns), owned); err != nil {
			t.Fatal(err)
		}
		for _, u := range list.Items {
			k := key{kind, u.GetName()}
			s.uids[k] = u.GetUID()
			_, s.marked[k] = u.GetAnnotations()[oldMarker]
		}
	}
	var secretList corev1.SecretList
	if err := env.Client.List(ctx, &secretList, client.InNamespace(ns), owned); err != nil {
		t.Fatal(err)
	}
	for _, sec := range secretList.Items {
		s.secrets[sec.Name] = sec.Data
	}
	var deployments unstructured.UnstructuredList
	deployments.SetAPIVersion("apps/v1")
	deployments.SetKind("DeploymentList")
	if err := env.Client.List(ctx, &deployments, client.InNamespace(ns), owned); err != nil {
		t.Fatal(err)
	}
	for _, d := range deployments.Items {
		containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			s.images[d.GetName()] = append(s.images[d.GetName()], c.(map[string]any)["image"].(string))
		}
	}
	return s
}

// upgradeCase is one Shop rendered by the previous version.
type upgradeCase struct {
	env shopv1.Environment
	// fieldManager the previous version applied with: the same as today's,
	// or another one (a renamed manager, or objects adopted from elsewhere).
	fieldManager string
	// preTLS: the previous version predates database TLS.
	preTLS bool

	shop       *shopv1.Shop
	before     snapshot
	wantImages map[string][]string
	counts     [3]int // StatefulSets, Deployments, generated Secrets
}

func (c *upgradeCase) name() string { return string(c.env) + "/" + c.fieldManager + c.suffix() }

func (c *upgradeCase) namespace() string {
	return "upgrade-" + string(c.env) + "-" + c.fieldManager + c.suffix()
}

func (c *upgradeCase) suffix() string {
	if c.preTLS {
		return "-pre-tls"
	}
	return ""
}

// setUp creates the Shop and its children as the previous version left them.
func (c *upgradeCase) setUp(t *testing.T) {
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.namespace()}}); err != nil {
		t.Fatal(err)
	}
	c.shop = &shopv1.Shop{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: c.namespace()},
		Spec:       shopv1.ShopSpec{Environment: c.env},
	}
	if err := env.Client.Create(ctx, c.shop); err != nil {
		t.Fatal(err)
	}
	renderOld(t, c.shop, c.fieldManager, c.preTLS)
	c.before = take(t, c.namespace())
	// Each managed database: no TLS Secret, StatefulSet without the TLS
	// args and config checksum, its service without verify-full.
	if problems := tlsProblems(ctx, c.namespace()); c.preTLS && len(problems) != 4*len(managedDatabases) {
		t.Fatalf("the old render is not pre-TLS: %d differences from the TLS shape, want %d:\n%s", len(problems), 4*len(managedDatabases), strings.Join(problems, "\n"))
	}

	// What the new operator wants, to know when it is done.
	want, err := engine.Desired(rendertest.InputFor(c.shop, render.AllAPIs))
	if err != nil {
		t.Fatal(err)
	}
	c.wantImages = map[string][]string{}
	for _, u := range want {
		switch u.GetKind() {
		case "StatefulSet":
			c.counts[0]++
		case "Deployment":
			c.counts[1]++
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			for _, ctr := range containers {
				c.wantImages[u.GetName()] = append(c.wantImages[u.GetName()], ctr.(map[string]any)["image"].(string))
			}
		}
	}
	c.counts[2] = len(c.before.secrets)
	if c.counts[0] == 0 || c.counts[1] == 0 || c.counts[2] == 0 {
		t.Fatalf("the old render has %d StatefulSets, %d Deployments, %d Secrets: nothing to upgrade", c.counts[0], c.counts[1], c.counts[2])
	}
	// The services change image; backends such as Jaeger keep theirs.
	changing := 0
	for name, images := range c.before.images {
		if fmt.Sprint(images) != fmt.Sprint(c.wantImages[name]) {
			changing++
		}
	}
	if changing < len(render.Services) {
		t.Fatalf("%d Deployments change image, want at least the %d services: the old render is not old", changing, len(render.Services))
	}
}

// check waits until the new operator has observed the Shop and every
// Deployment runs the new images, then compares with the snapshot.
func (c *upgradeCase) check(t *testing.T) {
	var after snapshot
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var live shopv1.Shop
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c.shop), &live); err != nil {
			return false, err
		}
		if live.Status.ObservedGeneration != live.Generation {
			return false, nil
		}
		after = take(t, c.namespace())
		for name, images := range c.wantImages {
			if fmt.Sprint(after.images[name]) != fmt.Sprint(images) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the new operator did not update the Deployments: %v\nwant %v\ngot  %v", err, c.wantImages, after.images)
	}
	for k, uid := range c.before.uids {
		if after.uids[k] != uid {
			t.Errorf("%s %s was replaced (UID %s -> %q)", k.kind, k.name, uid, after.uids[k])
		}
		// Under the same field manager, fields the new version no longer
		// renders are removed; another manager's fields stay (harmless).
		if c.fieldManager == render.ManagedBy && k.kind == "Deployment" && after.marked[k] {
			t.Errorf("%s %s still carries the old version's %s annotation: the new apply did not take the fields over", k.kind, k.name, oldMarker)
		}
	}
	for name, data := range c.before.secrets {
		if !maps.EqualFunc(data, after.secrets[name], func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Errorf("Secret %s was regenerated: keys before %v, after %v", name, slicesKeys(data), slicesKeys(after.secrets[name]))
		}
	}
	t.Logf("upgraded %d Deployments in place; kept %d StatefulSets and %d generated Secrets", c.counts[1], c.counts[0], c.counts[2])
	if c.preTLS {
		c.checkTLSAdded(t)
	}
}

func TestUpgradeKeepsDataBearingObjects(t *testing.T) {
	var cases []*upgradeCase
	for _, e := range rendertest.Environments {
		cases = append(cases, &upgradeCase{env: e, fieldManager: render.ManagedBy})
	}
	cases = append(cases, &upgradeCase{env: shopv1.Production, fieldManager: "shop-operator-old"},
		&upgradeCase{env: shopv1.Production, fieldManager: render.ManagedBy, preTLS: true})
	for _, c := range cases {
		t.Run(c.name()+"/previous version", c.setUp)
	}
	if t.Failed() {
		return
	}

	// Start the new operator once, for every Shop.
	mgr, err := controllers.NewManager(env.Config, ctrl.Options{
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	for _, c := range cases {
		t.Run(c.name()+"/upgraded", c.check)
	}
}

func slicesKeys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
