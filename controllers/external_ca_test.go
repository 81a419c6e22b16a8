package controllers

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
)

// TestExternalDatabaseCARollsPods: a new ca.crt in an external database's
// Secret changes the service's secrets checksum on the next reconcile (the
// resync, or at once when the Shop is annotated: Secrets are not watched),
// so its pods restart and trust the new CA.
func TestExternalDatabaseCARollsPods(t *testing.T) {
	ns := namespace(t)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-pg"}, StringData: map[string]string{
		"host": "pg.example", "port": "5432", "dbname": "orders", "user": "orders", "password": "s3cret", "sslmode": "verify-full", "ca.crt": "ca one",
	}}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	spec := shopv1.ShopSpec{Databases: shopv1.Databases{Orders: shopv1.DatabaseSpec{External: &shopv1.ExternalDatabase{SecretName: "orders-pg"}}}}
	if err := k8s.Create(ctx, newShop(ns, "ca", spec)); err != nil {
		t.Fatal(err)
	}
	checksum := func() string {
		d := &appsv1.Deployment{}
		if err := get(t, d, ns, "ca-orders"); err != nil {
			return ""
		}
		return d.Spec.Template.Annotations[workloads.SecretsChecksumAnnotation]
	}
	var first string
	eventually(t, "the orders Deployment with a secrets checksum", func() (bool, string) {
		first = checksum()
		return first != "", "no checksum yet"
	})

	sec.StringData = map[string]string{"ca.crt": "ca two"}
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	update(t, ns, "ca", func(s *shopv1.Shop) { metav1.SetMetaDataAnnotation(&s.ObjectMeta, "test/reconcile", "now") })
	eventually(t, "a new secrets checksum after the CA changed", func() (bool, string) {
		got := checksum()
		return got != "" && got != first, "checksum " + got
	})
}
