package backups_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/golden"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	code := func() int {
		var err error
		env, err = testenv.Start(testenv.Options{ThirdPartyCRDs: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = env.Stop() }()
		return m.Run()
	}()
	os.Exit(code)
}

type variant struct {
	name string
	spec shopv1.ShopSpec
}

// variants: every profile, development with backups turned on, and
// production with a custom image, class, size and a weekday schedule.
func variants() []variant {
	var out []variant
	for _, e := range rendertest.Environments {
		out = append(out, variant{string(e), shopv1.ShopSpec{Environment: e}})
	}
	dev := shopv1.ShopSpec{Environment: shopv1.Development}
	dev.Databases.Orders.Managed = &shopv1.ManagedDatabase{Backup: &shopv1.BackupSpec{Enabled: ptr.To(true), Schedule: "*/30 * * * *"}}
	custom := shopv1.ShopSpec{Environment: shopv1.Production}
	custom.Databases.Catalog.External = &shopv1.ExternalDatabase{SecretName: "catalog-pg"}
	custom.Databases.Auth.Managed = &shopv1.ManagedDatabase{
		Image: "registry.example.com/postgres:17.2-alpine", Version: "17", StorageClassName: ptr.To("fast-ssd"),
		Backup: &shopv1.BackupSpec{Schedule: "30 2 * * 1-5", Retain: ptr.To[int32](20), StorageSize: ptr.To(resource.MustParse("5Gi"))},
	}
	return append(out, variant{"development-orders-backup", dev}, variant{"production-custom", custom})
}

// stamp finishes objects exactly as the engine does (type metadata, common
// labels, an owner reference unless retained), then drops the nested
// creationTimestamps typed pod templates marshal, as golden files should not
// carry them.
func stamp(t testing.TB, in render.Input, objs []client.Object) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, obj := range objs {
		u, err := engine.Finish(in, obj)
		if err != nil {
			t.Fatal(err)
		}
		unstructured.RemoveNestedField(u.Object, "spec", "jobTemplate", "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u.Object, "spec", "jobTemplate", "spec", "template", "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
		out = append(out, u)
	}
	return out
}

func build(t testing.TB, in render.Input) []*unstructured.Unstructured {
	t.Helper()
	objs, err := backups.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	return stamp(t, in, objs)
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}

func TestGolden(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			golden.Assert(t, v.name+".yaml", golden.YAML(t, build(t, rendertest.Input(v.spec))))
		})
	}
}

// TestApply proves the real API server (with the prometheus-operator CRDs)
// accepts every object of every variant, owned by a real Shop: server-side
// apply for real, so the CronJob's schedule is validated by the CronJob
// strategy, then a second identical apply changes nothing.
func TestApply(t *testing.T) {
	ctx := context.Background()
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			ns := "backups-" + v.name
			if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				t.Fatal(err)
			}
			shop := rendertest.Shop(v.spec)
			shop.Namespace, shop.UID = ns, ""
			if err := env.Client.Create(ctx, shop); err != nil {
				t.Fatalf("creating the Shop: %v", err)
			}
			in := rendertest.InputFor(shop, render.AllAPIs)
			objs := build(t, in)
			for _, u := range objs {
				if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
					client.FieldOwner(render.ManagedBy), client.ForceOwnership); err != nil {
					t.Errorf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
				}
			}
			for _, svc := range render.Databases {
				job, err := backups.RestoreJob(in, svc, "orders-20260101T000000Z.dump")
				if backups.Managed(in, svc) == nil {
					if err == nil {
						t.Errorf("%s: a restore Job for an external database", svc)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				u := stamp(t, in, []client.Object{job})[0]
				if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
					client.FieldOwner(render.ManagedBy), client.ForceOwnership, client.DryRunAll); err != nil {
					t.Errorf("apply restore Job %s: %v", u.GetName(), err)
				}
			}
		})
	}
}
