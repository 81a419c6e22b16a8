package controllers

import (
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
)

// TestMissingBackupBucketSecret: a backup upload whose bucket Secret is
// missing (or lacks a key) is reported in ReferencesResolved by name, but the
// Shop still becomes Ready and its backups still run (the dump lands on the
// volume; only the upload step would fail).
func TestMissingBackupBucketSecret(t *testing.T) {
	ns := namespace(t)
	spec := shopv1.ShopSpec{Databases: shopv1.Databases{Orders: shopv1.DatabaseSpec{Managed: &shopv1.ManagedDatabase{
		Backup: &shopv1.BackupSpec{Enabled: ptr.To(true), S3: &shopv1.BackupS3Spec{SecretName: "orders-bucket"}},
	}}}}
	if err := k8s.Create(ctx, newShop(ns, "bkt", spec)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a message about the missing bucket Secret", func() (bool, string) {
		_, reason, msg := condition(getShop(t, ns, "bkt"), shopv1.ConditionReferencesResolved)
		return reason == "SecretMissing" && strings.Contains(msg, `orders backup upload: Secret "orders-bucket" not found`), reason + ": " + msg
	})
	mustGet(t, &batchv1.CronJob{}, ns, "bkt-orders-db-backup")
	markWorkloadsReady(t, ns, "bkt")
	waitCondition(t, ns, "bkt", shopv1.ConditionReady, metav1.ConditionTrue)

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-bucket"},
		StringData: map[string]string{"endpoint": "https://s3.example", "bucket": "shop-backups", "accessKeyID": "AKIA"}}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a message about the missing key", func() (bool, string) {
		_, _, msg := condition(getShop(t, ns, "bkt"), shopv1.ConditionReferencesResolved)
		return strings.Contains(msg, `Secret "orders-bucket" has no key "secretAccessKey"`), msg
	})
	sec.StringData = map[string]string{"secretAccessKey": "not-a-real-key"}
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "bkt", shopv1.ConditionReferencesResolved, metav1.ConditionTrue)
}
