package mesh_test

import (
	"testing"

	"github.com/shopplatform/shop-operator/internal/builders/mesh"
)

// BenchmarkBuild renders a production Shop's mesh objects (figures in docs/security.md).
func BenchmarkBuild(b *testing.B) {
	for _, v := range []variant{{env: "production", tls: true, istio: true}, {env: "production", tls: true, istio: false}} {
		in := v.input()
		b.Run(v.name(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := mesh.Build(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
