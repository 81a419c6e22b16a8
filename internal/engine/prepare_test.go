package engine_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/scheme"
	"github.com/shopplatform/shop-operator/internal/secrets"
	"github.com/shopplatform/shop-operator/internal/status"
)

// withExternalOrders is everything() with an admin, an external orders
// database and catalog's backups uploaded: every kind of reference.
func withExternalOrders() shopv1.ShopSpec {
	spec := everything()
	spec.Admin = &shopv1.AdminSpec{SecretName: "shop-admin"}
	spec.Databases.Orders = shopv1.DatabaseSpec{External: &shopv1.ExternalDatabase{SecretName: "orders-pg"}}
	spec.Databases.Catalog.Managed = &shopv1.ManagedDatabase{Backup: &shopv1.BackupSpec{
		Enabled: ptr.To(true), S3: &shopv1.BackupS3Spec{SecretName: "catalog-bucket"}}}
	return spec
}

// TestOfflineIsTheBuildersInput: without a cluster, Prepare gives what the
// builders' tests render (rendertest, which cannot import the engine).
func TestOfflineIsTheBuildersInput(t *testing.T) {
	for _, env := range rendertest.Environments {
		for _, apis := range []render.APIs{{}, render.AllAPIs} {
			spec := withExternalOrders()
			spec.Environment = env
			shop := rendertest.Shop(spec)
			p, err := engine.Prepare(context.Background(), shop, apis, nil, engine.Placeholders)
			if err != nil {
				t.Fatal(err)
			}
			want := rendertest.InputFor(shop, apis)
			if !reflect.DeepEqual(p.Input, want) || !reflect.DeepEqual(p.Resolved, want) {
				t.Errorf("%s %+v: Prepare without a cluster differs from rendertest.InputFor", env, apis)
			}
			if len(p.Problems) != 0 || p.Reached != status.Referenced {
				t.Errorf("%s: problems %v, reached %v: want none, Referenced", env, p.Problems, p.Reached)
			}
		}
	}
}

// TestPrepareChecksEveryReference: with none of the user's Secrets there,
// every reference is a problem, blocking only for the database; the
// exporters and the admin are left out of what is rendered, not out of what
// the status describes. Generated values that exist are kept.
func TestPrepareChecksEveryReference(t *testing.T) {
	shop := rendertest.Shop(withExternalOrders())
	signing := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: "demo-auth-signing-key"},
		Data: map[string][]byte{secrets.SigningKeyKey: []byte("kept")}}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(signing).Build()

	p, err := engine.Prepare(context.Background(), shop, render.AllAPIs, c, engine.Generate)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, pr := range p.Problems {
		got = append(got, pr.String())
		if pr.Blocking != (pr.Subject == render.DatabaseOf(render.Orders)) {
			t.Errorf("%s: blocking = %v", pr, pr.Blocking)
		}
	}
	want := []string{
		`orders database: Secret "orders-pg" not found`,
		`admin account: Secret "shop-admin" not found`,
		`datadog exporter: Secret "dd" not found`,
		`newrelic exporter: Secret "nr" not found`,
		`alert routing: Secret "pd" not found`,
		`alert routing: Secret "slack" not found`,
		`catalog backup upload: Secret "catalog-bucket" not found`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	o := p.Input.Spec.Observability
	if ptr.Deref(o.Datadog.Enabled, true) || ptr.Deref(o.NewRelic.Enabled, true) || p.Input.Spec.Admin != nil {
		t.Errorf("rendered with datadog %v, newrelic %v, admin %v: want them left out", o.Datadog.Enabled, o.NewRelic.Enabled, p.Input.Spec.Admin)
	}
	r := p.Resolved.Spec
	if !ptr.Deref(r.Observability.Datadog.Enabled, false) || !ptr.Deref(r.Observability.NewRelic.Enabled, false) || r.Admin == nil {
		t.Error("the resolved input (the status's) lost what the Shop asks for")
	}
	if v := string(p.Input.Generated["demo-auth-signing-key"][secrets.SigningKeyKey]); v != "kept" {
		t.Errorf("signing key = %q, want the existing value", v)
	}
	if v := string(p.Input.Generated[secrets.CookieSecretName(p.Input)][secrets.CookieSecretKey]); v == "" || v == secrets.Placeholder {
		t.Errorf("cookie secret = %q, want a generated value", v)
	}

	// shopctl: nothing is made up, what exists is still used.
	p, err = engine.Prepare(context.Background(), shop, render.AllAPIs, c, engine.Placeholders)
	if err != nil {
		t.Fatal(err)
	}
	if v := string(p.Input.Generated[secrets.CookieSecretName(p.Input)][secrets.CookieSecretKey]); v != secrets.Placeholder {
		t.Errorf("cookie secret = %q, want the placeholder", v)
	}
	if v := string(p.Input.Generated["demo-auth-signing-key"][secrets.SigningKeyKey]); v != "kept" {
		t.Errorf("signing key = %q, want the existing value", v)
	}
}

// TestPrepareReadsWhatRolls: the keys pods read only at start reach the
// builders (Input.Referenced), the others do not; a key missing is a problem.
func TestPrepareReadsWhatRolls(t *testing.T) {
	shop := rendertest.Shop(withExternalOrders())
	pg := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: "orders-pg"}, Data: map[string][]byte{
		secrets.HostKey: []byte("db"), secrets.PortKey: []byte("5432"), secrets.DBNameKey: []byte("orders"),
		secrets.UserKey: []byte("orders"), secrets.CACertKey: []byte("CA"),
	}}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(pg).Build()
	p, err := engine.Prepare(context.Background(), shop, render.AllAPIs, c, engine.Generate)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Input.Referenced["orders-pg"]; len(got) != 1 || string(got[secrets.CACertKey]) != "CA" {
		t.Errorf("Referenced[orders-pg] = %v, want only ca.crt", got)
	}
	db := p.Problems.About(render.DatabaseOf(render.Orders))
	if len(db) != 1 || db[0].Kind != status.SecretKeyMissing || db[0].Key != secrets.PasswordKey || !db[0].Blocking {
		t.Errorf("orders database problems %v, want its password missing, blocking", db)
	}
}

// TestEveryReferenceIsDeclared: every Secret a rendered child reads is
// either generated or declared by its builder (SecretRefs), so Prepare
// checks it. The gateway's certificate is Istio's to read.
func TestEveryReferenceIsDeclared(t *testing.T) {
	for _, env := range rendertest.Environments {
		spec := withExternalOrders()
		spec.Environment = env
		in := rendertest.InputFor(rendertest.Shop(spec), render.AllAPIs)
		objs, err := engine.Desired(in)
		if err != nil {
			t.Fatal(err)
		}
		known := map[string]bool{spec.Gateway.TLSSecretName: true}
		for _, s := range secrets.For(in) {
			known[s.Name] = true
		}
		for _, r := range engine.SecretRefs(in) {
			known[r.Name] = true
		}
		found := 0
		for _, u := range objs {
			for _, name := range secretNames(u.Object, "") {
				found++
				if !known[name] {
					t.Errorf("%s: %s reads Secret %q, which no builder declares", env, engine.Key(u), name)
				}
			}
		}
		if found == 0 {
			t.Fatalf("%s: no Secret reference found: the walk is broken", env)
		}
	}
}

// secretNames finds the Secrets an object refers to: secretKeyRef,
// secretRef (envFrom), secret volumes, and selectors of a key of a Secret
// ({name, key}) as prometheus-operator's receivers have them.
func secretNames(v any, parent string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		name, hasName := v["name"].(string)
		_, hasKey := v["key"].(string)
		switch {
		case parent == "secret" && v["secretName"] != nil:
			out = append(out, v["secretName"].(string))
		case parent == "secretRef" && hasName:
			out = append(out, name)
		case hasName && hasKey && parent != "configMapKeyRef" && parent != "configMap":
			out = append(out, name)
		}
		for k, child := range v {
			out = append(out, secretNames(child, k)...)
		}
	case []any:
		for _, child := range v {
			out = append(out, secretNames(child, parent)...)
		}
	}
	return out
}
