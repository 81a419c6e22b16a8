package backups_test

import (
	"context"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

func TestMain(m *testing.M) { buildertest.Main(m, testenv.Options{ThirdPartyCRDs: true}) }

// variants: every profile, development with backups turned on,
// production with a custom image, class, size and a weekday schedule, and
// testing with the orders backups uploaded to a bucket.
func variants() []buildertest.Variant {
	dev := shopv1.ShopSpec{Environment: shopv1.Development}
	dev.Databases.Orders.Managed = &shopv1.ManagedDatabase{Backup: &shopv1.BackupSpec{Enabled: ptr.To(true), Schedule: "*/30 * * * *"}}
	custom := shopv1.ShopSpec{Environment: shopv1.Production}
	custom.Databases.Catalog.External = &shopv1.ExternalDatabase{SecretName: "catalog-pg"}
	custom.Databases.Auth.Managed = &shopv1.ManagedDatabase{
		Image: "registry.example.com/postgres:17.2-alpine", Version: "17", StorageClassName: ptr.To("fast-ssd"),
		Backup: &shopv1.BackupSpec{Schedule: "30 2 * * 1-5", Retain: ptr.To[int32](20), StorageSize: ptr.To(resource.MustParse("5Gi"))},
	}
	return append(buildertest.Environments(),
		buildertest.Variant{Name: "development-orders-backup", Input: rendertest.Input(dev)},
		buildertest.Variant{Name: "production-custom", Input: rendertest.Input(custom)},
		buildertest.Variant{Name: "testing-s3", Input: rendertest.Input(withS3(shopv1.ShopSpec{Environment: shopv1.Testing}))})
}

// rendering are the variants that render anything (development backs up
// nothing, see TestProfiles).
func rendering() []buildertest.Variant {
	return slices.DeleteFunc(variants(), func(v buildertest.Variant) bool { return v.Name == string(shopv1.Development) })
}

func build(t testing.TB, in render.Input) []*unstructured.Unstructured {
	t.Helper()
	return buildertest.Build(t, backups.Build, in)
}

var find = buildertest.Find

func TestGolden(t *testing.T) { buildertest.Golden(t, variants(), backups.Build) }

// TestApply proves the real API server (with the prometheus-operator CRDs)
// accepts every object of every variant, owned by a real Shop; the CronJob's
// schedule is validated by the CronJob strategy.
func TestApply(t *testing.T) { buildertest.ApplyDryRun(t, "backups", rendering(), backups.Build) }

// TestApplyRestoreJob proves the real API server accepts the restore Job of
// every managed database, and that external databases get none.
func TestApplyRestoreJob(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.Name, func(t *testing.T) {
			in := buildertest.CreateShop(t, "backups-restore-"+v.Name, v.Input)
			for _, svc := range render.Databases {
				job, err := backups.RestoreJob(in, svc, "orders-20260101T000000Z.dump")
				if in.ManagedDatabase(svc) == nil {
					if err == nil {
						t.Errorf("%s: a restore Job for an external database", svc)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				u := buildertest.Stamp(t, in, []client.Object{job})[0]
				if _, err := buildertest.Apply(context.Background(), u, client.DryRunAll); err != nil {
					t.Errorf("apply restore Job %s: %v", u.GetName(), err)
				}
			}
		})
	}
}

// superuserPassword has quotes and a dollar sign, so that the backup's
// command line and env prove they pass it through untouched.
const superuserPassword = `s3cret "super" pa$$`
