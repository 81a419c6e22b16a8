package controllers

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
)

// TestAdminSecretReference: spec.admin.secretName is a checked reference. A
// missing Secret (or key) is named in ReferencesResolved and auth is
// rendered without the admin's variables, so it still starts and the Shop
// becomes Ready; once the Secret holds both keys auth reads them from it,
// and a new password rolls auth (secrets checksum).
func TestAdminSecretReference(t *testing.T) {
	ns := namespace(t)
	spec := shopv1.ShopSpec{Admin: &shopv1.AdminSpec{SecretName: "shop-admin"}}
	if err := k8s.Create(ctx, newShop(ns, "adm", spec)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a message about the missing admin Secret", func() (bool, string) {
		_, reason, msg := condition(getShop(t, ns, "adm"), shopv1.ConditionReferencesResolved)
		return reason == "SecretMissing" && strings.Contains(msg, `admin account: Secret "shop-admin" not found`), reason + ": " + msg
	})
	auth := func() *appsv1.Deployment {
		d := &appsv1.Deployment{}
		mustGet(t, d, ns, "adm-auth")
		return d
	}
	adminEnv := func(d *appsv1.Deployment) []string {
		var out []string
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if strings.HasPrefix(e.Name, "AUTH_ADMIN_") {
				out = append(out, e.Name)
			}
		}
		return out
	}
	if got := adminEnv(auth()); len(got) != 0 {
		t.Errorf("auth reads %v from a Secret that does not exist: its pods could not start", got)
	}
	markWorkloadsReady(t, ns, "adm")
	waitCondition(t, ns, "adm", shopv1.ConditionReady, metav1.ConditionTrue)

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-admin"},
		StringData: map[string]string{"email": "ops@shop.example"}}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a message about the missing password", func() (bool, string) {
		_, _, msg := condition(getShop(t, ns, "adm"), shopv1.ConditionReferencesResolved)
		return strings.Contains(msg, `admin account: Secret "shop-admin" has no key "password"`), msg
	})
	sec.StringData = map[string]string{"password": "first-password"}
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "adm", shopv1.ConditionReferencesResolved, metav1.ConditionTrue)
	var first string
	eventually(t, "auth reading the admin from the Secret", func() (bool, string) {
		d := auth()
		first = d.Spec.Template.Annotations[workloads.SecretsChecksumAnnotation]
		got := adminEnv(d)
		return slices.Equal(got, []string{"AUTH_ADMIN_EMAIL", "AUTH_ADMIN_PASSWORD"}), strings.Join(got, ",")
	})

	sec.StringData = map[string]string{"password": "second-password"}
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	// Secrets are not watched: the next reconcile (resync, or now) sees it.
	update(t, ns, "adm", func(s *shopv1.Shop) { metav1.SetMetaDataAnnotation(&s.ObjectMeta, "test/reconcile", "now") })
	eventually(t, "a new auth secrets checksum after the password changed", func() (bool, string) {
		got := auth().Spec.Template.Annotations[workloads.SecretsChecksumAnnotation]
		return got != "" && got != first, "checksum " + got
	})
}
