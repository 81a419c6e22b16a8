package controllers

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
)

// BenchmarkConverge creates N development Shops at once and measures the
// time until every one reports status for its generation, the operator's
// writes per Shop, and the test process's RSS (the operator plus the test
// client; the API server is a separate process). Run with
//
//	go test ./controllers -run '^$' -bench Converge -benchtime 1x
//
// Figures: docs/benchmarks.md.
func BenchmarkConverge(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("shops=%d", n), func(b *testing.B) {
			for b.Loop() {
				ns := benchNamespace(b)
				before, _ := writes.snapshot()
				start := time.Now()
				for i := range n {
					if err := k8s.Create(ctx, newShop(ns, fmt.Sprintf("s%d", i), shopv1.ShopSpec{})); err != nil {
						b.Fatal(err)
					}
				}
				for i := range n {
					waitObserved(b, ns, fmt.Sprintf("s%d", i))
				}
				elapsed := time.Since(start)
				after, _ := writes.snapshot()
				b.ReportMetric(float64(elapsed.Milliseconds()), "ms-to-status")
				b.ReportMetric(float64(after-before)/float64(n), "writes/shop")
				b.ReportMetric(rssMiB(), "MiB-rss")
			}
		})
	}
}

// BenchmarkCreateFloor creates the same children with a plain client, one
// request each: the floor under BenchmarkConverge on this machine.
func BenchmarkCreateFloor(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("shops=%d", n), func(b *testing.B) {
			for b.Loop() {
				ns := benchNamespace(b)
				start := time.Now()
				for i := range n {
					shop := newShop(ns, fmt.Sprintf("f%d", i), shopv1.ShopSpec{})
					shop.UID = "00000000-0000-0000-0000-000000000000"
					p, err := engine.Prepare(ctx, shop, render.APIs{}, nil, engine.Placeholders)
					if err != nil {
						b.Fatal(err)
					}
					objs, err := engine.Desired(p.Input)
					if err != nil {
						b.Fatal(err)
					}
					for _, o := range objs {
						o.SetOwnerReferences(nil)
						if err := k8s.Create(ctx, o); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-to-create")
			}
		})
	}
}

func benchNamespace(b *testing.B) string {
	b.Helper()
	name := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		b.Fatal(err)
	}
	return name
}

// waitObserved waits until the Shop's status describes its generation and
// its Deployments exist.
func waitObserved(b *testing.B, ns, name string) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		s := &shopv1.Shop{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err == nil &&
			s.Status.ObservedGeneration == s.Generation && s.Generation > 0 {
			deps := &appsv1.DeploymentList{}
			_ = k8s.List(ctx, deps, client.InNamespace(ns), client.MatchingLabels{render.LabelShop: name})
			if len(deps.Items) >= len(render.Services) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s/%s did not converge", ns, name)
}

func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
