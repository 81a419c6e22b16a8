package upgrade

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// withoutTLS turns a child as today's operator renders it into the child
// the version before database TLS rendered (the operator of 943f03a, whose
// goldens these edits reproduce): no -db-tls Secret, no pg_hba.conf, a
// StatefulSet that starts Postgres with the image's default command and
// mounts the whole init ConfigMap, clients without PGSSLMODE, PGSSLROOTCERT
// or the CA volume. It reports false for a child that did not exist then.
func withoutTLS(u *unstructured.Unstructured) bool {
	switch u.GetKind() {
	case "Secret":
		return !strings.HasSuffix(u.GetName(), "-db-tls")
	case "ConfigMap":
		unstructured.RemoveNestedField(u.Object, "data", "pg_hba.conf")
	case "StatefulSet":
		unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "annotations")
		stripTLS(u, "spec", "template", "spec")
	case "Deployment":
		stripTLS(u, "spec", "template", "spec")
	case "CronJob":
		stripTLS(u, "spec", "jobTemplate", "spec", "template", "spec")
	}
	return true
}

// tlsVolumes are the volumes database TLS added: the server's certificate
// and pg_hba.conf, the clients' CA.
var tlsVolumes = []string{"tls", "hba", "db-tls"}

func stripTLS(u *unstructured.Unstructured, podPath ...string) {
	pod, found, _ := unstructured.NestedMap(u.Object, podPath...)
	if !found {
		return
	}
	containers, _ := pod["containers"].([]any)
	for _, c := range containers {
		c := c.(map[string]any)
		if args, _ := c["args"].([]any); len(args) > 0 && args[0] == "postgres" {
			delete(c, "args")
		}
		vars, _ := c["env"].([]any)
		c["env"] = slices.DeleteFunc(vars, func(v any) bool {
			e := v.(map[string]any)
			// An external database's sslmode (from the user's Secret) is older than TLS.
			return e["name"] == "PGSSLROOTCERT" || (e["name"] == "PGSSLMODE" && e["value"] == "verify-full")
		})
		mounts, _ := c["volumeMounts"].([]any)
		c["volumeMounts"] = slices.DeleteFunc(mounts, func(m any) bool { return slices.Contains(tlsVolumes, m.(map[string]any)["name"].(string)) })
	}
	volumes, _ := pod["volumes"].([]any)
	volumes = slices.DeleteFunc(volumes, func(v any) bool { return slices.Contains(tlsVolumes, v.(map[string]any)["name"].(string)) })
	for _, v := range volumes {
		if cm, ok := v.(map[string]any)["configMap"].(map[string]any); ok && strings.HasSuffix(cm["name"].(string), "-db-init") {
			delete(cm, "items")
		}
	}
	pod["volumes"] = volumes
	_ = unstructured.SetNestedMap(u.Object, pod, podPath...)
}

// managedDatabases are the services whose database a default Shop runs.
var managedDatabases = render.Databases

// checkTLSAdded waits until the new operator has brought the pre-TLS
// children to the TLS shape, then proves that a second reconcile writes
// nothing: the TLS Secrets keep their identity and contents, no child
// changes its resourceVersion.
func (c *upgradeCase) checkTLSAdded(t *testing.T) {
	ctx := context.Background()
	ns := c.namespace()
	var problems []string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		problems = tlsProblems(ctx, ns)
		return len(problems) == 0, nil
	})
	if err != nil {
		t.Fatalf("the new operator did not add database TLS: %v\n%s", err, strings.Join(problems, "\n"))
	}
	before := take(t, ns)
	versions := resourceVersions(t, ns)

	// A second reconcile: annotating the Shop triggers one. It dry-runs
	// the apply of every child (fluxcd ssa), and writes only what drifted:
	// in the API server's audit log, after the annotation, wait for a dry
	// run of every child, then look for writes.
	desired, err := engine.Desired(rendertest.InputFor(c.shop, render.AllAPIs))
	if err != nil {
		t.Fatal(err)
	}
	mark := len(auditEvents(t))
	var live shopv1.Shop
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c.shop), &live); err != nil {
		t.Fatal(err)
	}
	live.Annotations = mergeMaps(live.Annotations, map[string]string{"upgrade.test/poke": "1"})
	if err := env.Client.Update(ctx, &live); err != nil {
		t.Fatal(err)
	}
	var dryRuns, writes []string
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		dryRuns, writes = nil, nil
		for _, e := range auditEvents(t)[mark:] {
			r := e.ObjectRef
			if r.Namespace != ns || r.Resource == "shops" || r.Resource == "events" {
				continue
			}
			what := e.Verb + " " + r.Resource + "/" + r.Name
			switch {
			case strings.Contains(e.RequestURI, "dryRun=All"):
				dryRuns = append(dryRuns, what)
			case slices.Contains([]string{"create", "update", "patch", "delete", "deletecollection"}, e.Verb):
				writes = append(writes, what)
			}
		}
		return len(dryRuns) >= len(desired), nil
	}); err != nil {
		t.Fatalf("no second reconcile after annotating the Shop (%d dry runs of %d children): %v", len(dryRuns), len(desired), err)
	}
	if len(writes) > 0 {
		t.Errorf("the second reconcile wrote: %v", writes)
	}
	after := resourceVersions(t, ns)
	for k, v := range versions {
		if after[k] != v {
			t.Errorf("the second reconcile wrote %s %s (resourceVersion %s -> %q)", k.kind, k.name, v, after[k])
		}
	}
	for k := range after {
		if _, ok := versions[k]; !ok {
			t.Errorf("the second reconcile created %s %s", k.kind, k.name)
		}
	}
	for _, svc := range managedDatabases {
		name := "demo-" + svc + "-db-tls"
		if string(before.secrets[name][secrets.CACertKey]) != string(take(t, ns).secrets[name][secrets.CACertKey]) {
			t.Errorf("Secret %s was regenerated by the second reconcile", name)
		}
	}
	t.Logf("pre-TLS children reconciled to TLS; a second reconcile dry-ran %d applies and wrote nothing", len(dryRuns))
}

// tlsProblems lists how the live children differ from the TLS shape.
func tlsProblems(ctx context.Context, ns string) []string {
	var out []string
	for _, svc := range managedDatabases {
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "demo-" + svc + "-db-tls"}, &s); err != nil {
			out = append(out, fmt.Sprintf("Secret demo-%s-db-tls: %v", svc, err))
		} else {
			for _, k := range []string{secrets.CACertKey, secrets.TLSCertKey, secrets.TLSKeyKey} {
				if len(s.Data[k]) == 0 {
					out = append(out, fmt.Sprintf("Secret %s lacks %s", s.Name, k))
				}
			}
		}
		sts := get(ctx, "apps/v1", "StatefulSet", ns, "demo-"+svc+"-db")
		if sts == nil {
			out = append(out, "no StatefulSet demo-"+svc+"-db")
		} else {
			if sum, _, _ := unstructured.NestedString(sts.Object, "spec", "template", "metadata", "annotations", "commerce.shopplatform.io/config-checksum"); sum == "" {
				out = append(out, sts.GetName()+": no config checksum")
			}
			cs, _, _ := unstructured.NestedSlice(sts.Object, "spec", "template", "spec", "containers")
			args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
			if !slices.Contains(args, "ssl=on") {
				out = append(out, fmt.Sprintf("%s: args %v without ssl=on", sts.GetName(), args))
			}
		}
		d := get(ctx, "apps/v1", "Deployment", ns, "demo-"+svc)
		if d == nil {
			out = append(out, "no Deployment demo-"+svc)
			continue
		}
		cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		vars, _, _ := unstructured.NestedSlice(cs[0].(map[string]any), "env")
		if !slices.ContainsFunc(vars, func(e any) bool {
			return e.(map[string]any)["name"] == "PGSSLMODE" && e.(map[string]any)["value"] == "verify-full"
		}) {
			out = append(out, d.GetName()+": no PGSSLMODE=verify-full")
		}
	}
	return out
}

func get(ctx context.Context, apiVersion, kind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		return nil
	}
	return u
}

// ownedKinds are the kinds of a production Shop's children whose writes the
// second reconcile must not make.
var ownedKinds = [][2]string{
	{"v1", "Secret"}, {"v1", "ConfigMap"}, {"v1", "Service"}, {"v1", "ServiceAccount"},
	{"apps/v1", "StatefulSet"}, {"apps/v1", "Deployment"}, {"batch/v1", "CronJob"},
	{"policy/v1", "PodDisruptionBudget"}, {"autoscaling/v2", "HorizontalPodAutoscaler"},
	{"networking.k8s.io/v1", "NetworkPolicy"},
}

func resourceVersions(t *testing.T, ns string) map[key]string {
	t.Helper()
	out := map[key]string{}
	for _, gk := range ownedKinds {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion(gk[0])
		list.SetKind(gk[1] + "List")
		if err := env.Client.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{render.LabelManagedBy: render.ManagedBy}); err != nil {
			t.Fatal(err)
		}
		for _, u := range list.Items {
			out[key{gk[1], u.GetName()}] = u.GetResourceVersion()
		}
	}
	return out
}

// auditEvent is what the test reads of an audit.k8s.io/v1 Event.
type auditEvent struct {
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	ObjectRef  struct {
		Resource, Namespace, Name string
	} `json:"objectRef"`
}

// auditEvents reads the API server's audit log: every request completed so
// far, in order.
func auditEvents(t *testing.T) []auditEvent {
	t.Helper()
	f, err := os.Open(env.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e auditEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
