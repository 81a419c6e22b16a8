package controllers

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/cli"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// TestShopctlRendersWhatTheOperatorApplies: on the same cluster state,
// `shopctl render --cluster` prints exactly the children the operator
// applied: the same set, and each one such that applying it under the
// operator's field manager changes nothing (a server-side dry run), but for
// the generated Secrets' values, which shopctl prints as placeholders only.
// First with the Datadog exporter's and the admin's Secrets missing (the
// operator renders without them), then with both there.
func TestShopctlRendersWhatTheOperatorApplies(t *testing.T) {
	ns := namespace(t)
	spec := shopv1.ShopSpec{
		Environment: shopv1.Testing,
		Admin:       &shopv1.AdminSpec{SecretName: "shop-admin"},
		Observability: shopv1.ObservabilitySpec{Datadog: shopv1.DatadogSpec{
			Enabled: ptr.To(true), APIKeySecretRef: &shopv1.SecretKeyRef{Name: "dd", Key: "api-key"},
		}},
	}
	shop := newShop(ns, "cli", spec)
	shop.APIVersion, shop.Kind = shopv1.GroupVersion.String(), "Shop"
	manifest, err := yaml.Marshal(shop)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "shop.yaml")
	if err := os.WriteFile(file, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, shop); err != nil {
		t.Fatal(err)
	}
	kubeconfig := writeKubeconfig(t)

	s := waitCondition(t, ns, "cli", shopv1.ConditionReferencesResolved, metav1.ConditionFalse)
	if _, _, msg := condition(s, shopv1.ConditionReferencesResolved); !strings.Contains(msg, `datadog exporter: Secret "dd" not found`) ||
		!strings.Contains(msg, `admin account: Secret "shop-admin" not found`) {
		t.Fatalf("ReferencesResolved: %s, want both Secrets missing", msg)
	}
	stderr := compareWithOperator(t, ns, "cli", file, kubeconfig)
	if !strings.Contains(stderr, `shop/cli: datadog exporter: Secret "dd" not found`) {
		t.Errorf("stderr = %q, want a note about the missing Secret", stderr)
	}

	for name, data := range map[string]map[string]string{
		"dd":         {"api-key": "x"},
		"shop-admin": {secrets.AdminEmailKey: "ops@shop.example", secrets.PasswordKey: "pw"},
	} {
		if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}); err != nil {
			t.Fatal(err)
		}
	}
	waitCondition(t, ns, "cli", shopv1.ConditionReferencesResolved, metav1.ConditionTrue)
	if stderr := compareWithOperator(t, ns, "cli", file, kubeconfig); stderr != "" {
		t.Errorf("stderr = %q, want nothing missing", stderr)
	}
}

// compareWithOperator runs shopctl render --cluster on the Shop's file and
// checks its output against the children in the cluster, until they agree
// (the operator may still be applying) or a minute has passed. It returns
// what shopctl printed on stderr.
func compareWithOperator(t *testing.T, ns, name, file, kubeconfig string) string {
	t.Helper()
	var stderr string
	eventually(t, "shopctl render --cluster to print what the operator applied", func() (bool, string) {
		root := cli.NewRoot("shopctl")
		var out, errOut bytes.Buffer
		root.SetArgs([]string{"render", "-f", file, "--cluster", "--kubeconfig", kubeconfig})
		root.SetOut(&out)
		root.SetErr(&errOut)
		if code := cli.Execute(root, &errOut); code != 0 {
			return false, fmt.Sprintf("exit %d: %s", code, errOut.String())
		}
		stderr = errOut.String()
		printed, err := splitDocs(out.String())
		if err != nil {
			return false, err.Error()
		}
		if len(printed) == 0 {
			return false, "printed nothing"
		}
		shop := getShop(t, ns, name)
		offline, err := engine.Prepare(ctx, shop, render.AllAPIs, nil, engine.Placeholders)
		if err != nil {
			return false, err.Error()
		}
		generated := offline.Input.Generated
		var keys []string
		for _, u := range printed {
			keys = append(keys, engine.Key(u))
			if msg := sameAsApplied(u, generated); msg != "" {
				return false, msg
			}
		}
		applied, err := childrenInCluster(ns, name)
		if err != nil {
			return false, err.Error()
		}
		slices.Sort(keys)
		if diff := cmp.Diff(applied, keys); diff != "" {
			return false, "children (-applied +printed):\n" + diff
		}
		return true, ""
	})
	return stderr
}

// sameAsApplied tells how the printed object differs from the one in the
// cluster: a server-side apply of it as the operator (dry run) must change
// nothing. In the Secrets, every generated value must be printed as the
// placeholder; it is then compared as the cluster's value.
func sameAsApplied(printed *unstructured.Unstructured, generated map[string]map[string][]byte) string {
	key := engine.Key(printed)
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(printed.GroupVersionKind())
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(printed), live); err != nil {
		return key + ": " + err.Error()
	}
	u := printed.DeepCopy()
	if keys, ok := generated[u.GetName()]; ok && u.GetKind() == "Secret" {
		data, _, _ := unstructured.NestedStringMap(u.Object, "data")
		liveData, _, _ := unstructured.NestedStringMap(live.Object, "data")
		placeholder := base64.StdEncoding.EncodeToString([]byte(secrets.Placeholder))
		for k := range keys {
			if data[k] != placeholder {
				return fmt.Sprintf("%s: generated key %s printed as %q, want the placeholder", key, k, data[k])
			}
			if _, ok := liveData[k]; ok {
				data[k] = liveData[k]
			}
		}
		_ = unstructured.SetNestedStringMap(u.Object, data, "data")
	}
	if err := k8s.Patch(ctx, u, client.Apply, client.FieldOwner(render.ManagedBy), client.ForceOwnership, client.DryRunAll); err != nil {
		return key + ": dry-run apply: " + err.Error()
	}
	strip := func(o *unstructured.Unstructured) map[string]any {
		c := o.DeepCopy()
		unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
		return c.Object
	}
	if diff := cmp.Diff(strip(live), strip(u)); diff != "" {
		return key + ": applying what shopctl printed would change (-applied +printed):\n" + diff
	}
	return ""
}

// childrenInCluster lists the keys of every object labelled as the Shop's
// child, of every kind the operator renders.
func childrenInCluster(ns, shop string) ([]string, error) {
	kinds := append([]schema.GroupVersionKind{corev1.SchemeGroupVersion.WithKind("Secret")}, baseKinds...)
	for _, api := range engine.OptionalAPIs {
		kinds = append(kinds, api.Kinds...)
	}
	var keys []string
	for _, gvk := range kinds {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := k8s.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{render.LabelShop: shop, render.LabelManagedBy: render.ManagedBy}); err != nil {
			return nil, err
		}
		for _, item := range list.Items {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(gvk)
			u.SetNamespace(item.Namespace)
			u.SetName(item.Name)
			keys = append(keys, engine.Key(u))
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// splitDocs parses multi-document YAML.
func splitDocs(out string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, d := range strings.Split(out, "---\n") {
		if strings.TrimSpace(d) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(d))
		if err != nil {
			return nil, fmt.Errorf("output is not YAML: %w\n%s", err, d)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			return nil, fmt.Errorf("output is not objects: %w\n%s", err, d)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// writeKubeconfig writes a kubeconfig for the suite's API server, as its admin.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	cfg := adminConfig
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
