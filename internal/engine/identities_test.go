package engine_test

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// TestMeshPrincipalsRunAsRenderedServiceAccounts reads what the mesh
// builder admits against what the other builders run: every principal of
// the Shop's namespace in an AuthorizationPolicy must be the ServiceAccount
// of pods the Shop renders (a Deployment, StatefulSet, Job or CronJob, or an
// OpenTelemetryCollector: its spec.serviceAccount, else the
// opentelemetry-operator's <name>-collector). A principal no pod runs as
// admits nobody, and the traffic it was meant for is refused. Every
// optional component is on, so that every identity has its pods.
func TestMeshPrincipalsRunAsRenderedServiceAccounts(t *testing.T) {
	for _, env := range rendertest.Environments {
		spec := everything()
		spec.Environment = env
		spec.Operations.LoadGenerator.Enabled = ptr.To(true)
		spec.Operations.SyntheticCheck.Enabled = ptr.To(true)
		in := rendertest.Input(spec)
		objs, err := engine.Desired(in)
		if err != nil {
			t.Fatal(err)
		}
		runAs := map[string]string{} // ServiceAccount -> the object whose pods use it
		principals := map[string][]string{}
		for _, o := range objs {
			switch o.GetKind() {
			case "Deployment", "StatefulSet", "DaemonSet", "Job":
				runAs[podServiceAccount(o, "spec", "template", "spec")] = o.GetKind() + "/" + o.GetName()
			case "CronJob":
				runAs[podServiceAccount(o, "spec", "jobTemplate", "spec", "template", "spec")] = o.GetKind() + "/" + o.GetName()
			case "OpenTelemetryCollector":
				sa, _, _ := unstructured.NestedString(o.Object, "spec", "serviceAccount")
				if sa == "" {
					sa = o.GetName() + "-collector"
				}
				runAs[sa] = o.GetKind() + "/" + o.GetName()
			case "AuthorizationPolicy":
				rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
				for _, r := range rules {
					from, _, _ := unstructured.NestedSlice(r.(map[string]any), "from")
					for _, f := range from {
						ps, _, _ := unstructured.NestedStringSlice(f.(map[string]any), "source", "principals")
						for _, p := range ps {
							principals[p] = append(principals[p], o.GetName())
						}
					}
				}
			}
		}
		if len(principals) == 0 || len(runAs) == 0 {
			t.Fatalf("%s: no AuthorizationPolicy principals or no pods rendered", env)
		}
		prefix := "cluster.local/ns/" + in.Shop.Namespace + "/sa/"
		for p, policies := range principals {
			sa, ours := strings.CutPrefix(p, prefix)
			if !ours {
				continue // another namespace's identity (the ingress gateway)
			}
			if _, ok := runAs[sa]; !ok {
				slices.Sort(policies)
				t.Errorf("%s: AuthorizationPolicies %v admit %s, but no rendered pod runs as ServiceAccount %s (pods run as %v)",
					env, slices.Compact(policies), p, sa, sortedKeys(runAs))
			}
		}
	}
}

func podServiceAccount(o *unstructured.Unstructured, path ...string) string {
	sa, _, _ := unstructured.NestedString(o.Object, append(path, "serviceAccountName")...)
	if sa == "" {
		return "default"
	}
	return sa
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
