package mesh_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	code := func() int {
		var err error
		if env, err = testenv.Start(testenv.Options{ThirdPartyCRDs: true}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = env.Stop() }()
		return m.Run()
	}()
	os.Exit(code)
}

// TestApply server-side applies every variant's objects for real, each in
// its own namespace, on an API server with Istio's real CRDs, then reads the
// Istio objects back: the stored spec must equal the rendered one (nothing
// pruned by the CRD schema, e.g. payment's empty retries that switch
// Istio's default retries off).
func TestApply(t *testing.T) {
	ctx := context.Background()
	inputs := map[string]render.Input{"production-istio-disabled": disabledInput()}
	for _, v := range variants() {
		inputs[v.name()] = v.input()
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			in.Shop = in.Shop.DeepCopy()
			in.Shop.Namespace = name
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
			if err := env.Client.Create(ctx, ns); err != nil {
				t.Fatal(err)
			}
			for _, u := range rendered(t, in) {
				if err := env.Client.Patch(ctx, u, client.Apply, client.FieldOwner(render.ManagedBy), client.ForceOwnership); err != nil {
					t.Fatalf("applying %s %s: %v", u.GetKind(), u.GetName(), err)
				}
			}
			objs, err := mesh.Build(in)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				assertStored(t, ctx, o)
			}
		})
	}
}

// assertStored compares an Istio object's stored spec with the rendered one.
func assertStored(t *testing.T, ctx context.Context, o client.Object) {
	t.Helper()
	key := client.ObjectKeyFromObject(o)
	var want, got proto.Message
	switch o := o.(type) {
	case *networkingv1.Gateway:
		s := &networkingv1.Gateway{}
		want, got = &o.Spec, &s.Spec
		must(t, env.Client.Get(ctx, key, s))
	case *networkingv1.VirtualService:
		s := &networkingv1.VirtualService{}
		want, got = &o.Spec, &s.Spec
		must(t, env.Client.Get(ctx, key, s))
	case *networkingv1.DestinationRule:
		s := &networkingv1.DestinationRule{}
		want, got = &o.Spec, &s.Spec
		must(t, env.Client.Get(ctx, key, s))
	case *securityv1.PeerAuthentication:
		s := &securityv1.PeerAuthentication{}
		want, got = &o.Spec, &s.Spec
		must(t, env.Client.Get(ctx, key, s))
	case *securityv1.RequestAuthentication:
		s := &securityv1.RequestAuthentication{}
		want, got = &o.Spec, &s.Spec
		must(t, env.Client.Get(ctx, key, s))
	case *securityv1.AuthorizationPolicy:
		s := &securityv1.AuthorizationPolicy{}
		want, got = &o.Spec, &s.Spec
		must(t, env.Client.Get(ctx, key, s))
	default:
		return
	}
	if !proto.Equal(want, got) {
		t.Errorf("%T %s: stored spec differs from the rendered one:\nwant %v\ngot  %v", o, key, want, got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
