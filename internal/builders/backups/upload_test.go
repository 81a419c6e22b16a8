package backups_test

import (
	"context"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// withS3 uploads the orders database's backups to the bucket of Secret orders-backups-s3.
func withS3(spec shopv1.ShopSpec) shopv1.ShopSpec {
	spec.Databases.Orders.Managed = &shopv1.ManagedDatabase{Backup: &shopv1.BackupSpec{S3: &shopv1.BackupS3Spec{SecretName: "orders-backups-s3"}}}
	return spec
}

func cronJob(t *testing.T, in render.Input, svc string) *batchv1.CronJob {
	t.Helper()
	u := find(build(t, in), "CronJob", backups.CronJobName(in, svc))
	if u == nil {
		t.Fatalf("no backup CronJob for %s", svc)
	}
	cj := &batchv1.CronJob{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, cj); err != nil {
		t.Fatal(err)
	}
	return cj
}

// TestUploadStep: with a bucket the dump runs first (init container) and
// `shopd backup-upload` second, reading the dumps read-only and the bucket
// from the Secret; databases without one keep the single dump container.
func TestUploadStep(t *testing.T) {
	in := rendertest.Input(withS3(shopv1.ShopSpec{Environment: shopv1.Testing}))
	pod := cronJob(t, in, render.Orders).Spec.JobTemplate.Spec.Template.Spec
	if len(pod.InitContainers) != 1 || pod.InitContainers[0].Name != "pg-dump" || len(pod.Containers) != 1 {
		t.Fatalf("orders: init %v, containers %v; want pg-dump then upload", names(pod.InitContainers), names(pod.Containers))
	}
	up := pod.Containers[0]
	if up.Name != backups.UploadContainer || !strings.HasPrefix(up.Image, "ghcr.io/shopplatform/shopd:") || strings.Join(up.Args, " ") != "backup-upload" {
		t.Errorf("upload container %s %s %v", up.Name, up.Image, up.Args)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range up.Env {
		env[e.Name] = e
	}
	for name, key := range map[string]string{"S3_ENDPOINT": "endpoint", "S3_BUCKET": "bucket", "S3_REGION": "region",
		"S3_ACCESS_KEY_ID": "accessKeyID", "S3_SECRET_ACCESS_KEY": "secretAccessKey"} {
		ref := env[name].ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "orders-backups-s3" || ref.SecretKeyRef.Key != key {
			t.Errorf("%s: %+v, want key %s of Secret orders-backups-s3", name, env[name], key)
		} else if optional := ptr.Deref(ref.SecretKeyRef.Optional, false); optional != (key == "region") {
			t.Errorf("%s optional = %v", name, optional)
		}
	}
	if env["PGDATABASE"].Value != "orders" || env["S3_PREFIX"].Value != "shop/demo/" || env[backups.EnvBackupDir].Value != backups.BackupDir {
		t.Errorf("env %v", up.Env)
	}
	if len(up.VolumeMounts) == 0 || up.VolumeMounts[0].MountPath != backups.BackupDir || !up.VolumeMounts[0].ReadOnly {
		t.Errorf("upload mounts %v, want the backups volume read-only", up.VolumeMounts)
	}
	if sc := up.SecurityContext; sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) {
		t.Errorf("upload security context %+v", sc)
	}

	auth := cronJob(t, in, render.Auth).Spec.JobTemplate.Spec.Template.Spec
	if len(auth.InitContainers) != 0 || len(auth.Containers) != 1 || auth.Containers[0].Name != "pg-dump" {
		t.Errorf("auth (no bucket): init %v, containers %v", names(auth.InitContainers), names(auth.Containers))
	}
	refs := backups.SecretRefs(in)
	if len(refs) != 1 || refs[0].Name != "orders-backups-s3" || strings.Join(refs[0].Keys, ",") != "endpoint,bucket,accessKeyID,secretAccessKey" {
		t.Errorf("SecretRefs = %+v", refs)
	}
}

// TestS3NeedsBackups: the API server refuses a bucket for backups that are
// switched off (the CRD's CEL rule), and accepts it when they are on.
func TestS3NeedsBackups(t *testing.T) {
	ctx := context.Background()
	off := withS3(shopv1.ShopSpec{Environment: shopv1.Testing})
	off.Databases.Orders.Managed.Backup.Enabled = ptr.To(false)
	shop := rendertest.Shop(off)
	shop.Namespace, shop.Name = "default", "s3-off"
	err := buildertest.Client().Create(ctx, shop)
	if err == nil || !strings.Contains(err.Error(), "backup.s3 uploads the backups") {
		t.Errorf("s3 with backups off: err = %v", err)
	}
	shop = rendertest.Shop(withS3(shopv1.ShopSpec{Environment: shopv1.Testing}))
	shop.Namespace, shop.Name = "default", "s3-on"
	if err := buildertest.Client().Create(ctx, shop); err != nil {
		t.Errorf("s3 with backups on by the profile: %v", err)
	}
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}
