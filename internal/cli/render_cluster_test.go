package cli_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// TestRenderForTheCluster: with --cluster, render reads the cluster as the
// operator does: the exporter and the admin whose Secrets are missing are
// left out (and said so on stderr), an existing generated value counts in
// the checksums but is never printed, and owner references name the stored
// Shop. Without --cluster the same file renders them all. (The controllers
// suite compares --cluster with what the operator applies.)
func TestRenderForTheCluster(t *testing.T) {
	ns := "render-cluster"
	spec := shopv1.ShopSpec{
		Environment: shopv1.Testing,
		Admin:       &shopv1.AdminSpec{SecretName: "shop-admin"},
		Observability: shopv1.ObservabilitySpec{Datadog: shopv1.DatadogSpec{
			Enabled: ptr.To(true), APIKeySecretRef: &shopv1.SecretKeyRef{Name: "dd", Key: "api-key"},
		}},
	}
	stored := createShop(t, ns, "cl", spec)
	manifest, err := yaml.Marshal(map[string]any{
		"apiVersion": shopv1.GroupVersion.String(), "kind": "Shop",
		"metadata": map[string]any{"name": "cl", "namespace": ns}, "spec": spec,
	})
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "shop.yaml", string(manifest))
	const realKey = "a-real-signing-key"
	signing := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cl-auth-signing-key"},
		Data: map[string][]byte{secrets.SigningKeyKey: []byte(realKey)}}
	if err := env.Client.Create(context.Background(), signing); err != nil {
		t.Fatal(err)
	}

	onCluster := run(t, "shopctl", "", "render", "-f", file, "--cluster", "--kubeconfig", kubeconfig(t, env.Config, ns))
	if onCluster.code != 0 {
		t.Fatalf("exit %d: %s", onCluster.code, onCluster.stderr)
	}
	for _, want := range []string{`shop/cl: datadog exporter: Secret "dd" not found`, `shop/cl: admin account: Secret "shop-admin" not found`} {
		if !strings.Contains(onCluster.stderr, want) {
			t.Errorf("stderr = %q, want %q", onCluster.stderr, want)
		}
	}
	if strings.Contains(onCluster.stdout, base64.StdEncoding.EncodeToString([]byte(realKey))) || strings.Contains(onCluster.stdout, realKey) {
		t.Error("render --cluster printed a generated value")
	}
	offline := run(t, "shopctl", "", "render", "-f", file)
	if offline.code != 0 {
		t.Fatalf("exit %d: %s", offline.code, offline.stderr)
	}

	type view struct {
		datadog, admin bool
		checksum       string
	}
	look := func(out string) view {
		var v view
		for _, u := range docs(t, out) {
			for _, ref := range u.GetOwnerReferences() {
				if out == onCluster.stdout && ref.UID != stored.UID {
					t.Errorf("%s/%s is owned by UID %s, want the stored Shop's %s", u.GetKind(), u.GetName(), ref.UID, stored.UID)
				}
			}
			switch {
			case u.GetKind() == "OpenTelemetryCollector":
				cfg, _, _ := unstructured.NestedMap(u.Object, "spec", "config")
				v.datadog = v.datadog || strings.Contains(fmt.Sprint(cfg), "datadog")
			case u.GetKind() == "Deployment" && u.GetName() == "cl-auth":
				v.admin = strings.Contains(fmt.Sprint(u.Object["spec"]), "AUTH_ADMIN_EMAIL")
				v.checksum, _, _ = unstructured.NestedString(u.Object, "spec", "template", "metadata", "annotations", workloads.SecretsChecksumAnnotation)
			}
		}
		return v
	}
	c, o := look(onCluster.stdout), look(offline.stdout)
	if c.datadog || c.admin {
		t.Errorf("--cluster rendered datadog %v, admin %v: want both left out while their Secrets are missing", c.datadog, c.admin)
	}
	if !o.datadog || !o.admin {
		t.Errorf("without --cluster rendered datadog %v, admin %v: want both (nothing is known of the cluster)", o.datadog, o.admin)
	}
	if c.checksum == "" || c.checksum == o.checksum {
		t.Errorf("auth's secrets checksum %q with --cluster, %q without: want the existing signing key to count", c.checksum, o.checksum)
	}
}
