// Package buildertest is the test harness every builder package shares: one
// real API server per package, objects stamped exactly as the engine stamps
// them, golden files per variant, and apply tests against the real API server
// with a real Shop owning the objects.
package buildertest

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/golden"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

// BuildFunc is a builder package's Build.
type BuildFunc func(render.Input) ([]client.Object, error)

// Variant is one Shop a test renders; Name names its golden file
// (testdata/<Name>.yaml) and its subtest.
type Variant struct {
	Name  string
	Input render.Input
}

// Environments are one Variant per environment profile, named after it.
func Environments() []Variant {
	var out []Variant
	for _, e := range rendertest.Environments {
		out = append(out, Variant{Name: string(e), Input: rendertest.Input(shopv1.ShopSpec{Environment: e})})
	}
	return out
}

var env *testenv.Env

// Main starts the package's API server, runs its tests, stops the server and
// exits. Call it from TestMain.
func Main(m *testing.M, opts testenv.Options) {
	os.Exit(run(m, opts))
}

func run(m *testing.M, opts testenv.Options) int {
	var err error
	if env, err = testenv.Start(opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test API server:", err)
		}
	}()
	return m.Run()
}

// Client is the client of the API server Main started.
func Client() client.Client {
	if env == nil {
		panic("buildertest: no API server; call buildertest.Main from TestMain")
	}
	return env.Client
}

// Stamp finishes objects exactly as the engine does (type metadata, common
// labels, owner reference), as unstructured.
func Stamp(t testing.TB, in render.Input, objs []client.Object) []*unstructured.Unstructured {
	t.Helper()
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		u, err := engine.Finish(in, obj)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

// Build renders in with build and stamps the objects.
func Build(t testing.TB, build BuildFunc, in render.Input) []*unstructured.Unstructured {
	t.Helper()
	objs, err := build(in)
	if err != nil {
		t.Fatal(err)
	}
	return Stamp(t, in, objs)
}

// Golden compares each variant's stamped objects with testdata/<name>.yaml
// (rewritten with -update).
func Golden(t *testing.T, variants []Variant, build BuildFunc) {
	for _, v := range variants {
		t.Run(v.Name, func(t *testing.T) {
			golden.Assert(t, v.Name+".yaml", golden.YAML(t, Build(t, build, v.Input)))
		})
	}
}

// CreateShop creates namespace ns and in's Shop in it, and returns in for
// that real Shop (its UID set by the API server), so that owner references
// point at an object that exists.
func CreateShop(t testing.TB, ns string, in render.Input) render.Input {
	t.Helper()
	ctx := context.Background()
	if err := Client().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatalf("creating namespace %s: %v", ns, err)
	}
	shop := in.Shop.DeepCopy()
	shop.Namespace, shop.UID, shop.ResourceVersion = ns, "", ""
	if err := Client().Create(ctx, shop); err != nil {
		t.Fatalf("creating the Shop: %v", err)
	}
	in.Shop = shop
	return in
}

// Apply server-side applies u as the operator does, with strict field
// validation (an unknown field fails instead of being pruned), and returns
// the object the server answered.
func Apply(ctx context.Context, u *unstructured.Unstructured, opts ...client.PatchOption) (*unstructured.Unstructured, error) {
	u = u.DeepCopy()
	opts = append([]client.PatchOption{client.FieldOwner(render.ManagedBy), client.ForceOwnership,
		client.FieldValidation("Strict")}, opts...)
	// Patch with client.Apply (not Client.Apply): only Patch takes FieldValidation.
	err := Client().Patch(ctx, u, client.Apply, opts...) //nolint:staticcheck
	return u, err
}

// ApplyDryRun proves the real API server accepts every object of every
// variant: each variant's Shop is created for real in namespace
// <prefix>-<name>, then its objects are server-side applied (dry run).
func ApplyDryRun(t *testing.T, prefix string, variants []Variant, build BuildFunc) {
	for _, v := range variants {
		t.Run(v.Name, func(t *testing.T) {
			in := CreateShop(t, prefix+"-"+v.Name, v.Input)
			objs := Build(t, build, in)
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			for _, u := range objs {
				if _, err := Apply(context.Background(), u, client.DryRunAll); err != nil {
					t.Errorf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
				}
			}
		})
	}
}

// ReapplyWritesNothing creates every object of every variant for real, then
// applies the same render again: nothing may change (no field the API server
// defaults differently, no list it reorders), or the operator would write on
// every reconcile.
func ReapplyWritesNothing(t *testing.T, prefix string, variants []Variant, build BuildFunc) {
	ctx := context.Background()
	for _, v := range variants {
		t.Run(v.Name, func(t *testing.T) {
			in := CreateShop(t, prefix+"-"+v.Name, v.Input)
			objs := Build(t, build, in)
			apply := func(u *unstructured.Unstructured) string {
				got, err := Apply(ctx, u)
				if err != nil {
					t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
				}
				if got.GetResourceVersion() == "" {
					t.Fatalf("apply %s %s did not report a resourceVersion", u.GetKind(), u.GetName())
				}
				return got.GetResourceVersion()
			}
			first := map[string]string{}
			for _, u := range objs {
				first[engine.Key(u)] = apply(u)
			}
			for _, u := range objs {
				if rv := apply(u); rv != first[engine.Key(u)] {
					t.Errorf("%s %s changed on re-apply (resourceVersion %s -> %s)", u.GetKind(), u.GetName(), first[engine.Key(u)], rv)
				}
			}
		})
	}
}

// Find returns the object of kind and name, or nil.
func Find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}
