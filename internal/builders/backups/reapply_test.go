package backups_test

import (
	"context"
	"testing"

	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
)

// resourceVersions reads every object back from the API server.
func resourceVersions(t *testing.T, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, u := range objs {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(u.GroupVersionKind())
		if err := buildertest.Client().Get(context.Background(), client.ObjectKeyFromObject(u), got); err != nil {
			t.Fatalf("get %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		out[engine.Key(u)] = got.GetResourceVersion()
	}
	return out
}

// TestReapplyWritesNothing applies every variant twice the way the operator
// does (fluxcd/pkg/ssa under the operator's field manager: a dry run, a
// write only on drift): two applies leave one resourceVersion per object,
// the backups claims included.
func TestReapplyWritesNothing(t *testing.T) {
	ctx := context.Background()
	manager := ssa.NewResourceManager(buildertest.Client(), nil, ssa.Owner{Field: render.ManagedBy, Group: shopv1.GroupVersion.Group})
	for _, v := range rendering() {
		t.Run(v.Name, func(t *testing.T) {
			in := buildertest.CreateShop(t, "backups-steady-"+v.Name, v.Input)
			objs := build(t, in)
			if _, err := manager.ApplyAllStaged(ctx, objs, ssa.DefaultApplyOptions()); err != nil {
				t.Fatal(err)
			}
			first := resourceVersions(t, objs)
			changes, err := manager.ApplyAllStaged(ctx, build(t, in), ssa.DefaultApplyOptions())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range changes.Entries {
				if e.Action != ssa.UnchangedAction {
					t.Errorf("re-apply: %s %s", e.Subject, e.Action)
				}
			}
			for key, rv := range resourceVersions(t, objs) {
				if rv != first[key] {
					t.Errorf("%s changed on re-apply (resourceVersion %s -> %s)", key, first[key], rv)
				}
			}
		})
	}
}

// TestClaimSettlesAfterOneWrite pins down why a plain server-side apply of a
// new claim writes once more: on create the API server clears the status it
// defaulted (status.phase Pending) and stores it empty; every read defaults
// it again, and the first update stores the defaulted Pending. Nothing the
// builder renders can avoid it (status is not the client's on create), the
// claim is identical before and after, and the operator does not write at all
// (TestReapplyWritesNothing). From the second apply on, plain apply is
// stable too.
func TestClaimSettlesAfterOneWrite(t *testing.T) {
	ctx := context.Background()
	in := buildertest.CreateShop(t, "backups-claim", rendering()[0].Input)
	pvc := buildertest.Find(build(t, in), "PersistentVolumeClaim", backups.ClaimName(in, render.Orders))
	if pvc == nil {
		t.Fatal("no orders backups claim")
	}
	var rvs []string
	var applied []*unstructured.Unstructured
	for range 3 {
		got, err := buildertest.Apply(ctx, pvc)
		if err != nil {
			t.Fatal(err)
		}
		rvs = append(rvs, got.GetResourceVersion())
		applied = append(applied, got)
	}
	t.Logf("resourceVersions of three plain applies: %v", rvs)
	if rvs[1] != rvs[2] {
		t.Errorf("the claim keeps changing on plain apply: %v", rvs)
	}
	for i, got := range applied {
		phase, _, _ := unstructured.NestedString(got.Object, "status", "phase")
		mode, _, _ := unstructured.NestedString(got.Object, "spec", "volumeMode")
		if phase != "Pending" || mode != "Filesystem" {
			t.Errorf("apply %d: phase %q, volumeMode %q", i+1, phase, mode)
		}
	}
}
