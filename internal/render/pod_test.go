package render_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/profile"
	"github.com/shopplatform/shop-operator/internal/render"
)

func TestWithEphemeralStorage(t *testing.T) {
	got := render.WithEphemeralStorage(corev1.ResourceRequirements{}, resource.MustParse("1Gi"))
	if r, l := got.Requests[corev1.ResourceEphemeralStorage], got.Limits[corev1.ResourceEphemeralStorage]; r.String() != "64Mi" || l.String() != "1536Mi" {
		t.Errorf("ephemeral storage = request %s, limit %s; want 64Mi, 512Mi + 1Gi", r.String(), l.String())
	}
	// A Shop's own values win, and the input is not changed.
	own := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("1Gi")},
		Limits:   corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("2Gi")},
	}
	got = render.WithEphemeralStorage(own, resource.Quantity{})
	if r, l := got.Requests[corev1.ResourceEphemeralStorage], got.Limits[corev1.ResourceEphemeralStorage]; r.String() != "1Gi" || l.String() != "2Gi" {
		t.Errorf("ephemeral storage = request %s, limit %s; want the Shop's 1Gi, 2Gi", r.String(), l.String())
	}
	got.Limits[corev1.ResourceEphemeralStorage] = resource.MustParse("3Gi")
	if l := own.Limits[corev1.ResourceEphemeralStorage]; l.String() != "2Gi" {
		t.Errorf("WithEphemeralStorage changed its input: %s", l.String())
	}
}

// TestResourcesCPULimits: the containers the builders size follow the
// profile's CPU policy, as the profile's own resources do.
func TestResourcesCPULimits(t *testing.T) {
	for _, env := range []shopv1.Environment{shopv1.Development, shopv1.Testing, shopv1.Production} {
		spec := profile.Defaults(env)
		in := render.Input{Spec: spec}
		got := in.Resources("10m", "32Mi", "64Mi")
		cpu, hasCPU := got.Limits[corev1.ResourceCPU]
		_, profileCPU := spec.Workloads.Auth.Resources.Limits[corev1.ResourceCPU]
		if hasCPU != spec.CPULimits || profileCPU != spec.CPULimits {
			t.Errorf("%s: CPU limit on a builder-sized container %v, on a profile-sized one %v; the profile says %v",
				env, hasCPU, profileCPU, spec.CPULimits)
		}
		if hasCPU && cpu.String() != "40m" {
			t.Errorf("%s: CPU limit %s, want 4 x 10m", env, cpu.String())
		}
		if m := got.Limits[corev1.ResourceMemory]; m.String() != "64Mi" {
			t.Errorf("%s: memory limit %s, want 64Mi", env, m.String())
		}
	}
	if len(render.Input{}.Resources("10m", "32Mi", "").Limits) != 0 {
		t.Error("no memory limit asked and no CPU limits: want no limits at all")
	}
}
