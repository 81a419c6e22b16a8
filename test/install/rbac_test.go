package install

import (
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/scheme"
)

// TestShopUserRoles binds shop-viewer and shop-editor to two users in one
// namespace and acts as them: viewers read Shops and nothing more, editors
// change Shops but never their status (that is the operator's).
func TestShopUserRoles(t *testing.T) {
	ctx := context.Background()
	ns := "rbac-users"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"shop-viewer", "shop-editor"} {
		data, err := os.ReadFile(configDir("rbac", strings.ReplaceAll(role, "-", "_")+"_role.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cr := &rbacv1.ClusterRole{}
		if err := yaml.Unmarshal(data, cr); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, cr); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: role + "-user"}},
		}
		if err := env.Client.Create(ctx, rb); err != nil {
			t.Fatal(err)
		}
	}
	as := func(user string) client.Client {
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	viewer, editor := as("shop-viewer-user"), as("shop-editor-user")
	newShop := func(name string) *shopv1.Shop {
		return &shopv1.Shop{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	allowed := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: refused: %v", what, err)
		}
	}
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: want Forbidden, got %v", what, err)
		}
	}

	allowed("editor creates a Shop", editor.Create(ctx, newShop("web")))
	shop := newShop("web")
	allowed("viewer reads a Shop", viewer.Get(ctx, client.ObjectKeyFromObject(shop), shop))
	allowed("viewer lists Shops", viewer.List(ctx, &shopv1.ShopList{}, client.InNamespace(ns)))
	forbidden("viewer creates a Shop", viewer.Create(ctx, newShop("mine")))
	shop.Spec.Paused = true
	forbidden("viewer updates a Shop", viewer.Update(ctx, shop))
	forbidden("viewer deletes a Shop", viewer.Delete(ctx, newShop("web")))

	allowed("editor re-reads the Shop", editor.Get(ctx, client.ObjectKeyFromObject(shop), shop))
	shop.Spec.Paused = true
	allowed("editor updates a Shop", editor.Update(ctx, shop))
	shop.Status.URL = "http://forged.example"
	forbidden("editor writes a Shop's status", editor.Status().Update(ctx, shop))
	forbidden("editor reads Secrets through the Shop roles", editor.List(ctx, &corev1.SecretList{}, client.InNamespace(ns)))
	forbidden("viewer works in another namespace", viewer.List(ctx, &shopv1.ShopList{}, client.InNamespace("default")))
	allowed("editor deletes a Shop", editor.Delete(ctx, newShop("web")))
}
