package profile_test

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/profile"
	"github.com/shopplatform/shop-operator/internal/version"
)

var update = flag.Bool("update", false, "rewrite the generated tables in docs/profiles.md")

func TestResolve(t *testing.T) {
	orders := func(r profile.Resolved) *shopv1.DatabaseSpec { return &r.Databases.Orders }
	cases := []struct {
		name  string
		spec  shopv1.ShopSpec
		check func(t *testing.T, r profile.Resolved)
	}{
		{"empty environment is development", shopv1.ShopSpec{}, func(t *testing.T, r profile.Resolved) {
			eq(t, "environment", r.Environment, shopv1.Development)
			eq(t, "frontend replicas", *r.Workloads.Frontend.Replicas, int32(1))
			eq(t, "log level", r.Workloads.Auth.LogLevel, shopv1.LogLevel("debug"))
			eq(t, "sampling", *r.Observability.Collector.SamplingPercentage, int32(100))
			eq(t, "ephemeral database", *r.Databases.Auth.Managed.Ephemeral, true)
			eq(t, "autoscaling", *r.Workloads.Catalog.Autoscaling.Enabled, false)
			eq(t, "mTLS", r.Gateway.Istio.MTLSMode, shopv1.MTLSMode("PERMISSIVE"))
			eq(t, "limits", len(r.Workloads.Orders.Resources.Limits), 0)
			eq(t, "PDBs", r.PodDisruptionBudgets, false)
			eq(t, "image tag", r.Image.Tag, version.Version)
		}},
		{"testing defaults", shopv1.ShopSpec{Environment: shopv1.Testing}, func(t *testing.T, r profile.Resolved) {
			eq(t, "log level", r.Workloads.Auth.LogLevel, shopv1.LogLevel("info"))
			eq(t, "ephemeral database", *r.Databases.Auth.Managed.Ephemeral, false)
			eq(t, "rules", *r.Observability.Prometheus.Rules, true)
			eq(t, "load generator", *r.Operations.LoadGenerator.Enabled, true)
			eq(t, "mTLS", r.Gateway.Istio.MTLSMode, shopv1.MTLSMode("STRICT"))
			eq(t, "topology spread", r.TopologySpread, false)
		}},
		{"production defaults", shopv1.ShopSpec{Environment: shopv1.Production}, func(t *testing.T, r profile.Resolved) {
			eq(t, "frontend replicas", *r.Workloads.Frontend.Replicas, int32(3))
			eq(t, "auth replicas", *r.Workloads.Auth.Replicas, int32(2))
			eq(t, "autoscaling", *r.Workloads.Payment.Autoscaling.Enabled, true)
			eq(t, "autoscaling min", *r.Workloads.Frontend.Autoscaling.MinReplicas, int32(3))
			eq(t, "tail sampling", *r.Observability.Collector.TailSampling, true)
			eq(t, "storage", r.Databases.Orders.Managed.StorageSize.String(), "20Gi")
			eq(t, "cpu limit", r.Workloads.Frontend.Resources.Limits.Cpu().String(), "400m")
			eq(t, "PDBs", r.PodDisruptionBudgets, true)
			eq(t, "topology spread", r.TopologySpread, true)
			eq(t, "jaeger", *r.Observability.Jaeger.Enabled, false)
		}},
		{"explicit false and zero win", func() shopv1.ShopSpec {
			s := shopv1.ShopSpec{Environment: shopv1.Production}
			s.Workloads.Frontend.Autoscaling = &shopv1.AutoscalingSpec{Enabled: ptr.To(false)}
			s.Workloads.Payment.Replicas = ptr.To[int32](0)
			s.Observability.Collector.SamplingPercentage = ptr.To[int32](0)
			s.Observability.Collector.TailSampling = ptr.To(false)
			s.Observability.Prometheus.ServiceMonitors = ptr.To(false)
			s.Gateway.Istio.Enabled = ptr.To(false)
			return s
		}(), func(t *testing.T, r profile.Resolved) {
			eq(t, "frontend autoscaling", *r.Workloads.Frontend.Autoscaling.Enabled, false)
			// Setting one autoscaling field keeps the profile's others.
			eq(t, "frontend max replicas", *r.Workloads.Frontend.Autoscaling.MaxReplicas, int32(12))
			eq(t, "auth autoscaling", *r.Workloads.Auth.Autoscaling.Enabled, true)
			eq(t, "payment replicas", *r.Workloads.Payment.Replicas, int32(0))
			eq(t, "sampling", *r.Observability.Collector.SamplingPercentage, int32(0))
			eq(t, "tail sampling", *r.Observability.Collector.TailSampling, false)
			eq(t, "service monitors", *r.Observability.Prometheus.ServiceMonitors, false)
			eq(t, "istio", *r.Gateway.Istio.Enabled, false)
		}},
		{"development can turn ephemeral storage off", func() shopv1.ShopSpec {
			s := shopv1.ShopSpec{}
			s.Databases.Catalog.Managed = &shopv1.ManagedDatabase{Ephemeral: ptr.To(false), StorageClassName: ptr.To("fast")}
			return s
		}(), func(t *testing.T, r profile.Resolved) {
			eq(t, "ephemeral", *r.Databases.Catalog.Managed.Ephemeral, false)
			eq(t, "storage class", *r.Databases.Catalog.Managed.StorageClassName, "fast")
			eq(t, "version kept", r.Databases.Catalog.Managed.Version, "16")
			eq(t, "other databases", *r.Databases.Auth.Managed.Ephemeral, true)
		}},
		{"user values replace leaves whole", func() shopv1.ShopSpec {
			s := shopv1.ShopSpec{Environment: shopv1.Production}
			s.Workloads.Orders.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}
			s.Gateway.Istio.GatewaySelector = map[string]string{"app": "gw"}
			s.Observability.Loki.Retention = &metav1.Duration{Duration: time.Hour}
			s.Image = shopv1.ImageSpec{Repository: "registry.example.com/shopd"}
			return s
		}(), func(t *testing.T, r profile.Resolved) {
			eq(t, "resources", r.Workloads.Orders.Resources.Requests.Cpu().String(), "1")
			eq(t, "no merged limits", len(r.Workloads.Orders.Resources.Limits), 0)
			eq(t, "selector", r.Gateway.Istio.GatewaySelector, map[string]string{"app": "gw"})
			eq(t, "retention", r.Observability.Loki.Retention.Duration, time.Hour)
			eq(t, "repository", r.Image.Repository, "registry.example.com/shopd")
			eq(t, "tag stays the operator's", r.Image.Tag, version.Version)
		}},
		{"external database replaces the managed default", func() shopv1.ShopSpec {
			s := shopv1.ShopSpec{Environment: shopv1.Production}
			s.Databases.Orders.External = &shopv1.ExternalDatabase{SecretName: "orders-pg"}
			return s
		}(), func(t *testing.T, r profile.Resolved) {
			if orders(r).Managed != nil {
				t.Errorf("orders is external and still managed: %+v", orders(r).Managed)
			}
			eq(t, "secret", orders(r).External.SecretName, "orders-pg")
			if r.Databases.Auth.Managed == nil || r.Databases.Auth.External != nil {
				t.Error("auth lost its managed default")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := c.spec.DeepCopy()
			c.check(t, profile.Resolve(c.spec))
			if diff := cmp.Diff(before, &c.spec); diff != "" {
				t.Errorf("Resolve changed its input:\n%s", diff)
			}
		})
	}
}

// TestResolveIsIndependent: resolving twice gives equal, unshared results.
func TestResolveIsIndependent(t *testing.T) {
	a := profile.Resolve(shopv1.ShopSpec{Environment: shopv1.Production})
	*a.Workloads.Frontend.Replicas = 99
	a.Gateway.Istio.GatewaySelector["x"] = "y"
	b := profile.Resolve(shopv1.ShopSpec{Environment: shopv1.Production})
	eq(t, "replicas", *b.Workloads.Frontend.Replicas, int32(3))
	eq(t, "selector", len(b.Gateway.Istio.GatewaySelector), 1)
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestDocsTable keeps docs/profiles.md in step with the code: its generated
// sections must equal what this test renders from profile.Defaults and the
// API types. Run with -update to rewrite them.
func TestDocsTable(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "profiles.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(doc)
	want := got
	for _, s := range []struct{ marker, body string }{
		{"defaults", defaultsTable()},
		{"no-defaults", noDefaultsList()},
	} {
		want, err = replaceSection(want, s.marker, s.body)
		if err != nil {
			t.Fatal(err)
		}
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("docs/profiles.md is out of date with profile.Defaults (-doc +code); run go test ./internal/profile -update:\n%s", diff)
	}
}

func replaceSection(doc, marker, body string) (string, error) {
	begin, end := "<!-- BEGIN "+marker+" (generated by TestDocsTable) -->\n", "<!-- END "+marker+" -->"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("docs/profiles.md lacks the markers %q and %q", begin, end)
	}
	return doc[:i+len(begin)] + body + doc[j:], nil
}

var environments = []shopv1.Environment{shopv1.Development, shopv1.Testing, shopv1.Production}

// defaultsTable renders every default of every environment, one row per
// field; fields that are the same for every service (or database) share a
// row with * in place of the name.
func defaultsTable() string {
	values := map[string][3]string{}
	for i, e := range environments {
		d := profile.Defaults(e)
		flat := map[string]string{}
		flatten(flat, "", reflect.ValueOf(d.ShopSpec))
		flat["(profile) podDisruptionBudgets"] = fmt.Sprint(d.PodDisruptionBudgets)
		flat["(profile) topologySpread"] = fmt.Sprint(d.TopologySpread)
		delete(flat, "environment")
		for k, v := range flat {
			row := values[k]
			row[i] = v
			values[k] = row
		}
	}
	rows := collapse(values, "workloads.", []string{"frontend", "auth", "catalog", "orders", "payment"})
	rows = collapse(rows, "databases.", []string{"auth", "catalog", "orders"})
	keys := slices.Sorted(maps.Keys(rows))
	var b strings.Builder
	b.WriteString("| field | development | testing | production |\n| --- | --- | --- | --- |\n")
	for _, k := range keys {
		r := rows[k]
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k, cell(r[0]), cell(r[1]), cell(r[2]))
	}
	return b.String()
}

func cell(v string) string {
	if v == "" {
		return "–"
	}
	return strings.ReplaceAll(v, "|", `\|`)
}

// collapse merges prefix.<name>.rest rows into prefix.*.rest when every name
// has the same values.
func collapse(rows map[string][3]string, prefix string, names []string) map[string][3]string {
	out := map[string][3]string{}
	groups := map[string]map[string][3]string{} // rest -> name -> values
	for k, v := range rows {
		name, rest, ok := strings.Cut(strings.TrimPrefix(k, prefix), ".")
		if !strings.HasPrefix(k, prefix) || !ok || !slices.Contains(names, name) {
			out[k] = v
			continue
		}
		if groups[rest] == nil {
			groups[rest] = map[string][3]string{}
		}
		groups[rest][name] = v
	}
	for rest, byName := range groups {
		same := len(byName) == len(names)
		for _, n := range names {
			same = same && byName[n] == byName[names[0]]
		}
		if same {
			out[prefix+"*."+rest] = byName[names[0]]
			continue
		}
		for n, v := range byName {
			out[prefix+n+"."+rest] = v
		}
	}
	return out
}

var apiPkg = reflect.TypeFor[shopv1.ShopSpec]().PkgPath()

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// flatten writes every set value under v as path -> text. A non-nil pointer
// is set even to false or 0; any other zero value is "not set".
func flatten(out map[string]string, path string, v reflect.Value) {
	set := false
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v, set = v.Elem(), true
	}
	if v.Kind() == reflect.Struct && v.Type().PkgPath() == apiPkg {
		for i := range v.NumField() {
			flatten(out, join(path, jsonName(v.Type().Field(i))), v.Field(i))
		}
		return
	}
	if v.IsZero() && !set {
		return
	}
	out[path] = text(path, v.Interface())
}

func text(path string, v any) string {
	switch x := v.(type) {
	case corev1.ResourceRequirements:
		var parts []string
		for _, l := range []struct {
			name string
			list corev1.ResourceList
		}{{"requests", x.Requests}, {"limits", x.Limits}} {
			if len(l.list) > 0 {
				parts = append(parts, fmt.Sprintf("%s cpu %s, memory %s", l.name, ptr.To(l.list[corev1.ResourceCPU]).String(), ptr.To(l.list[corev1.ResourceMemory]).String()))
			}
		}
		return strings.Join(parts, "; ")
	case resource.Quantity:
		return x.String()
	case metav1.Duration:
		if x.Duration == 0 {
			return "0s"
		}
		s := x.Duration.String()
		s = strings.TrimSuffix(strings.TrimSuffix(s, "0s"), "0m")
		return s
	case map[string]string:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+": "+x[k])
		}
		return "`" + strings.Join(parts, ", ") + "`"
	case string:
		if path == "image.tag" && x == version.Version {
			return "the operator's version"
		}
		return "`" + x + "`"
	default:
		return fmt.Sprint(v)
	}
}

// noDefaultsList lists every field of the API that no profile sets: the
// user's to fill in.
func noDefaultsList() string {
	all := map[string]bool{}
	fields(all, "", reflect.TypeFor[shopv1.ShopSpec]())
	for _, e := range environments {
		flat := map[string]string{}
		flatten(flat, "", reflect.ValueOf(profile.Defaults(e).ShopSpec))
		for k := range flat {
			delete(all, k)
		}
	}
	delete(all, "environment")
	paths := collapseNames(all)
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "- `%s`\n", p)
	}
	return b.String()
}

// fields lists the path of every leaf field of t.
func fields(out map[string]bool, path string, t reflect.Type) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t.PkgPath() == apiPkg {
		for i := range t.NumField() {
			fields(out, join(path, jsonName(t.Field(i))), t.Field(i).Type)
		}
		return
	}
	out[path] = true
}

func collapseNames(set map[string]bool) []string {
	out := map[string]bool{}
	for p := range set {
		for prefix, names := range map[string][]string{
			"workloads.": {"frontend", "auth", "catalog", "orders", "payment"},
			"databases.": {"auth", "catalog", "orders"},
		} {
			for _, n := range names {
				if strings.HasPrefix(p, prefix+n+".") {
					p = prefix + "*." + strings.TrimPrefix(p, prefix+n+".")
				}
			}
		}
		out[p] = true
	}
	return slices.Sorted(maps.Keys(out))
}
