package mesh_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

func TestMain(m *testing.M) { buildertest.Main(m, testenv.Options{ThirdPartyCRDs: true}) }

// TestApply server-side applies every variant's objects for real, each
// owned by a real Shop in its own namespace, on an API server with Istio's
// real CRDs, then reads the Istio objects back: the stored spec must equal
// the rendered one (nothing pruned by the CRD schema, e.g. payment's empty
// retries that switch Istio's default retries off).
func TestApply(t *testing.T) {
	ctx := context.Background()
	for _, v := range allVariants() {
		t.Run(v.Name, func(t *testing.T) {
			in := buildertest.CreateShop(t, "mesh-"+v.Name, v.Input)
			for _, u := range buildertest.Build(t, mesh.Build, in) {
				if _, err := buildertest.Apply(ctx, u); err != nil {
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
		must(t, buildertest.Client().Get(ctx, key, s))
	case *networkingv1.VirtualService:
		s := &networkingv1.VirtualService{}
		want, got = &o.Spec, &s.Spec
		must(t, buildertest.Client().Get(ctx, key, s))
	case *networkingv1.DestinationRule:
		s := &networkingv1.DestinationRule{}
		want, got = &o.Spec, &s.Spec
		must(t, buildertest.Client().Get(ctx, key, s))
	case *securityv1.PeerAuthentication:
		s := &securityv1.PeerAuthentication{}
		want, got = &o.Spec, &s.Spec
		must(t, buildertest.Client().Get(ctx, key, s))
	case *securityv1.RequestAuthentication:
		s := &securityv1.RequestAuthentication{}
		want, got = &o.Spec, &s.Spec
		must(t, buildertest.Client().Get(ctx, key, s))
	case *securityv1.AuthorizationPolicy:
		s := &securityv1.AuthorizationPolicy{}
		want, got = &o.Spec, &s.Spec
		must(t, buildertest.Client().Get(ctx, key, s))
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
