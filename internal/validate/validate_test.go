package validate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/shopplatform/shop-operator/config/crd"
	"github.com/shopplatform/shop-operator/internal/testenv"
	"github.com/shopplatform/shop-operator/internal/validate"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start(testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

const namespace = "validate"

// shop builds a Shop from a YAML spec.
func shop(t *testing.T, name, spec string) *unstructured.Unstructured {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: commerce.shopplatform.io/v1alpha1\nkind: Shop\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, namespace, indent(spec))
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("bad test YAML: %v\n%s", err, doc)
	}
	return u
}

func indent(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || s == "{}" {
		return "  {}\n"
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

type invalidCase struct {
	name string
	// old, when set, is created first; spec is then an update of it.
	old  string
	spec string
	// shopName overrides the Shop's name (for the name rules).
	shopName string
	want     string
}

const receiverSlack = `slack:
        apiURLSecretRef: {name: s, key: k}`

// invalidShops has one Shop per validation rule of api/v1alpha1/shop_types.go.
var invalidShops = []invalidCase{
	// Enums.
	{name: "environment enum", spec: `environment: staging`, want: `spec.environment: Unsupported value: "staging"`},
	{name: "log level enum", spec: `workloads: {frontend: {logLevel: verbose}}`, want: `spec.workloads.frontend.logLevel: Unsupported value: "verbose"`},
	{name: "pull policy enum", spec: `image: {pullPolicy: Sometimes}`, want: `spec.image.pullPolicy: Unsupported value: "Sometimes"`},
	{name: "postgres version enum", spec: `databases: {auth: {managed: {version: "14"}}}`, want: `spec.databases.auth.managed.version: Unsupported value: "14"`},
	{name: "mtls enum", spec: `gateway: {istio: {mtlsMode: DISABLE}}`, want: `spec.gateway.istio.mtlsMode: Unsupported value: "DISABLE"`},
	{name: "jaeger mode enum", spec: `observability: {jaeger: {mode: Cloud}}`, want: `spec.observability.jaeger.mode: Unsupported value: "Cloud"`},
	{name: "jaeger storage enum", spec: `observability: {jaeger: {storage: cassandra}}`, want: `spec.observability.jaeger.storage: Unsupported value: "cassandra"`},
	{name: "datadog site enum", spec: `observability: {datadog: {site: example.com}}`, want: `spec.observability.datadog.site: Unsupported value: "example.com"`},
	{name: "new relic region enum", spec: `observability: {newRelic: {region: APAC}}`, want: `spec.observability.newRelic.region: Unsupported value: "APAC"`},
	{name: "severity enum", spec: "observability:\n  alerting:\n    receivers:\n    - name: ops\n      severity: info\n      " + receiverSlack, want: `spec.observability.alerting.receivers[0].severity: Unsupported value: "info"`},
	// Ranges.
	{name: "replicas above 100", spec: `workloads: {catalog: {replicas: 101}}`, want: `spec.workloads.catalog.replicas: Invalid value: 101: spec.workloads.catalog.replicas in body should be less than or equal to 100`},
	{name: "negative replicas", spec: `workloads: {orders: {replicas: -1}}`, want: `should be greater than or equal to 0`},
	{name: "autoscaling min replicas", spec: `workloads: {auth: {autoscaling: {minReplicas: 0}}}`, want: `spec.workloads.auth.autoscaling.minReplicas: Invalid value: 0`},
	{name: "autoscaling max replicas", spec: `workloads: {auth: {autoscaling: {maxReplicas: 101}}}`, want: `spec.workloads.auth.autoscaling.maxReplicas: Invalid value: 101`},
	{name: "autoscaling cpu target", spec: `workloads: {payment: {autoscaling: {targetCPUUtilization: 5}}}`, want: `should be greater than or equal to 10`},
	{name: "autoscaling min above max", spec: `workloads: {frontend: {autoscaling: {minReplicas: 5, maxReplicas: 3}}}`, want: `autoscaling.minReplicas must not exceed autoscaling.maxReplicas`},
	{name: "collector replicas", spec: `observability: {collector: {replicas: 21}}`, want: `spec.observability.collector.replicas: Invalid value: 21`},
	{name: "sampling percentage", spec: `observability: {collector: {samplingPercentage: 101}}`, want: `spec.observability.collector.samplingPercentage: Invalid value: 101`},
	{name: "backup retain", spec: `databases: {orders: {managed: {backup: {retain: 0}}}}`, want: `spec.databases.orders.managed.backup.retain: Invalid value: 0`},
	{name: "load generator rate", spec: `operations: {loadGenerator: {requestsPerSecond: 10001}}`, want: `spec.operations.loadGenerator.requestsPerSecond: Invalid value: 10001`},
	// Patterns and lengths.
	{name: "image repository pattern", spec: `image: {repository: "Not A Repo"}`, want: `spec.image.repository: Invalid value: "Not A Repo": spec.image.repository in body should match`},
	{name: "image tag pattern", spec: `image: {tag: "-v1"}`, want: `spec.image.tag: Invalid value: "-v1"`},
	{name: "image repository length", spec: `image: {repository: ` + strings.Repeat("a", 256) + `}`, want: `spec.image.repository: Too long: may not be more than 255 bytes`},
	{name: "host pattern", spec: `gateway: {hosts: ["Shop.Example.com"]}`, want: `spec.gateway.hosts[0]: Invalid value: "Shop.Example.com"`},
	{name: "duplicate hosts", spec: `gateway: {hosts: [shop.example.com, shop.example.com]}`, want: `spec.gateway.hosts[1]: Duplicate value: "shop.example.com"`},
	{name: "too many hosts", spec: `gateway: {hosts: [` + hosts(17) + `]}`, want: `spec.gateway.hosts: Too many: 17: must have at most 16 items`},
	{name: "gateway selector size", spec: `gateway: {istio: {gatewaySelector: {` + labels(17) + `}}}`, want: `spec.gateway.istio.gatewaySelector: Too many: 17: must have at most 16 items`},
	{name: "loki endpoint pattern", spec: `observability: {loki: {endpoint: "loki:3100"}}`, want: `spec.observability.loki.endpoint: Invalid value: "loki:3100"`},
	{name: "scrape interval pattern", spec: `observability: {prometheus: {scrapeInterval: "30"}}`, want: `spec.observability.prometheus.scrapeInterval: Invalid value: "30"`},
	{name: "slo availability pattern", spec: `observability: {alerting: {slo: {availability: "80"}}}`, want: `spec.observability.alerting.slo.availability: Invalid value: "80"`},
	{name: "receiver name pattern", spec: "observability:\n  alerting:\n    receivers:\n    - name: On_Call\n      " + receiverSlack, want: `spec.observability.alerting.receivers[0].name: Invalid value: "On_Call"`},
	{name: "duplicate env names", spec: `workloads: {frontend: {env: [{name: A, value: "1"}, {name: A, value: "2"}]}}`, want: `spec.workloads.frontend.env[1]: Duplicate value: {"name":"A"}`},
	{name: "too many env vars", spec: `workloads: {payment: {env: [` + envs(65) + `]}}`, want: `spec.workloads.payment.env: Too many: 65: must have at most 64 items`},
	{name: "too many receivers", spec: "observability:\n  alerting:\n    receivers:\n" + receivers(17), want: `spec.observability.alerting.receivers: Too many: 17: must have at most 16 items`},
	{name: "duplicate receiver names", spec: "observability:\n  alerting:\n    receivers:\n" + receivers(1) + receivers(1), want: `spec.observability.alerting.receivers[1]: Duplicate value: {"name":"r0"}`},
	{name: "slack channel length", spec: "observability:\n  alerting:\n    receivers:\n    - name: chat\n      slack: {channel: " + strings.Repeat("c", 81) + ", apiURLSecretRef: {name: s, key: k}}", want: `spec.observability.alerting.receivers[0].slack.channel: Too long: may not be more than 80 bytes`},
	{name: "email smarthost required", spec: "observability:\n  alerting:\n    receivers:\n    - name: mail\n      email: {to: ops@example.com}", want: `spec.observability.alerting.receivers[0].email.smarthost: Required value`},
	{name: "secret key empty", spec: `observability: {datadog: {enabled: true, apiKeySecretRef: {name: dd, key: ""}}}`, want: `spec.observability.datadog.apiKeySecretRef.key: Invalid value: ""`},
	{name: "grafana labels size", spec: `observability: {grafana: {labels: {` + labels(17) + `}}}`, want: `spec.observability.grafana.labels: Too many: 17: must have at most 16 items`},
	{name: "prometheus selector labels size", spec: `observability: {prometheus: {selectorLabels: {` + labels(17) + `}}}`, want: `spec.observability.prometheus.selectorLabels: Too many: 17: must have at most 16 items`},
	{name: "slo latency target pattern", spec: `observability: {alerting: {slo: {latencyTarget: "100"}}}`, want: `spec.observability.alerting.slo.latencyTarget: Invalid value: "100"`},
	{name: "storage class name length", spec: `databases: {auth: {managed: {storageClassName: ` + strings.Repeat("s", 254) + `}}}`, want: `spec.databases.auth.managed.storageClassName: Too long: may not be more than 253 bytes`},
	{name: "tls secret name length", spec: `gateway: {tlsSecretName: ` + strings.Repeat("t", 254) + `}`, want: `spec.gateway.tlsSecretName: Too long: may not be more than 253 bytes`},
	{name: "external secret name required", spec: `databases: {catalog: {external: {}}}`, want: `spec.databases.catalog.external.secretName: Required value`},
	{name: "external secret name empty", spec: `databases: {catalog: {external: {secretName: ""}}}`, want: `spec.databases.catalog.external.secretName: Invalid value: "": spec.databases.catalog.external.secretName in body should be at least 1 chars long`},
	{name: "email to too short", spec: "observability:\n  alerting:\n    receivers:\n    - name: mail\n      email: {to: a, smarthost: 'smtp:25'}", want: `spec.observability.alerting.receivers[0].email.to: Invalid value: "a"`},
	{name: "unknown field", spec: `colour: blue`, want: `unknown field "spec.colour"`},
	// Names.
	{name: "name longer than 40", shopName: strings.Repeat("a", 41), spec: `{}`, want: `metadata.name must be at most 40 characters`},
	{name: "name not a DNS subdomain", shopName: "My_Shop", spec: `{}`, want: `metadata.name: Invalid value: "My_Shop": a lowercase RFC 1123 subdomain`},
	// Cross-field rules.
	{name: "managed and external", spec: `databases: {orders: {managed: {}, external: {secretName: orders-db}}}`, want: `spec.databases.orders: Invalid value: managed and external are mutually exclusive: set one of them`},
	{name: "ephemeral in production", spec: `{environment: production, databases: {catalog: {managed: {ephemeral: true}}}}`, want: `ephemeral database storage loses all data when a pod restarts and is not allowed in production`},
	{name: "fault injection in production", spec: `{environment: production, operations: {faultInjection: {payment: {errorPercent: 10}}}}`, want: `fault injection makes real charges fail and is not allowed in production`},
	{name: "fault injection in production, allow false", spec: `{environment: production, operations: {faultInjection: {allowInProduction: false, payment: {latency: 1s}}}}`, want: `fault injection makes real charges fail and is not allowed in production`},
	{name: "fault injection added to a production Shop", old: `{environment: production}`, spec: `{environment: production, operations: {faultInjection: {payment: {errorPercent: 100}}}}`, want: `fault injection makes real charges fail and is not allowed in production`},
	{name: "fault error percent above 100", spec: `operations: {faultInjection: {payment: {errorPercent: 101}}}`, want: `spec.operations.faultInjection.payment.errorPercent: Invalid value: 101`},
	{name: "negative fault error percent", spec: `operations: {faultInjection: {payment: {errorPercent: -1}}}`, want: `spec.operations.faultInjection.payment.errorPercent: Invalid value: -1`},
	{name: "negative fault latency", spec: `operations: {faultInjection: {payment: {latency: -1s}}}`, want: `operations.faultInjection.payment.latency must be between 0s and 1m`},
	{name: "fault latency above a minute", spec: `operations: {faultInjection: {payment: {latency: 2m}}}`, want: `operations.faultInjection.payment.latency must be between 0s and 1m`},
	{name: "receiver without channel", spec: "observability:\n  alerting:\n    receivers:\n    - name: nobody", want: `spec.observability.alerting.receivers[0]: Invalid value: a receiver needs exactly one of slack, pagerDuty, email or webhook`},
	{name: "receiver with two channels", spec: "observability:\n  alerting:\n    receivers:\n    - name: both\n      " + receiverSlack + "\n      webhook: {urlSecretRef: {name: s, key: k}}", want: `a receiver needs exactly one of slack, pagerDuty, email or webhook`},
	{name: "datadog without key", spec: `observability: {datadog: {enabled: true}}`, want: `datadog.apiKeySecretRef is required when datadog is enabled`},
	{name: "new relic without key", spec: `observability: {newRelic: {enabled: true}}`, want: `newRelic.licenseKeySecretRef is required when newRelic is enabled`},
	{name: "external jaeger without endpoint", spec: `observability: {jaeger: {enabled: true, mode: External}}`, want: `jaeger.endpoint is required when jaeger.mode is External`},
	{name: "external loki without endpoint", spec: `observability: {loki: {enabled: true, mode: External}}`, want: `loki.endpoint is required when loki.mode is External`},
	// Transition rules (updates).
	{name: "storage class immutable", old: `databases: {auth: {managed: {storageClassName: fast}}}`, spec: `databases: {auth: {managed: {storageClassName: slow}}}`, want: `storageClassName is immutable: the data lives on volumes of the old class`},
	{name: "storage class removed", old: `databases: {auth: {managed: {storageClassName: fast}}}`, spec: `databases: {auth: {managed: {}}}`, want: `storageClassName is immutable`},
	{name: "postgres version immutable", old: `databases: {orders: {managed: {version: "16"}}}`, spec: `databases: {orders: {managed: {version: "17"}}}`, want: `version is immutable: a major Postgres upgrade needs a dump and restore`},
	{name: "ephemeral immutable", old: `databases: {catalog: {managed: {ephemeral: true}}}`, spec: `databases: {catalog: {managed: {ephemeral: false}}}`, want: `ephemeral is immutable: switching storage kind would lose the data`},
	{name: "storage cannot shrink", old: `databases: {orders: {managed: {storageSize: 10Gi}}}`, spec: `databases: {orders: {managed: {storageSize: 5Gi}}}`, want: `storageSize is immutable`},
	{name: "storage size added later", old: `{}`, spec: `databases: {orders: {managed: {storageSize: 10Gi}}}`, want: `storageSize is immutable`},
	{name: "version added later", old: `databases: {orders: {managed: {}}}`, spec: `databases: {orders: {managed: {version: "17"}}}`, want: `version is immutable`},
	{name: "external added to an implicitly managed database", old: `{}`, spec: `databases: {auth: {external: {secretName: pg}}}`, want: `switching a database between managed and external`},
	{name: "environment changed", old: `{environment: development}`, spec: `{environment: production}`, want: `environment is immutable`},
	{name: "storage cannot grow in place", old: `databases: {orders: {managed: {storageSize: 5Gi}}}`, spec: `databases: {orders: {managed: {storageSize: 10Gi}}}`, want: `storageSize is immutable`},
	{name: "managed to external", old: `databases: {auth: {managed: {}}}`, spec: `databases: {auth: {external: {secretName: auth-db}}}`, want: `switching a database between managed and external would leave its data behind`},
	{name: "external to managed", old: `databases: {auth: {external: {secretName: auth-db}}}`, spec: `databases: {auth: {managed: {}}}`, want: `switching a database between managed and external would leave its data behind`},
}

func hosts(n int) string {
	var h []string
	for i := range n {
		h = append(h, fmt.Sprintf("h%d.example.com", i))
	}
	return strings.Join(h, ", ")
}

func envs(n int) string {
	var e []string
	for i := range n {
		e = append(e, fmt.Sprintf("{name: V%d, value: x}", i))
	}
	return strings.Join(e, ", ")
}

func receivers(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "    - name: r%d\n      webhook: {urlSecretRef: {name: s, key: k}}\n", i)
	}
	return b.String()
}

func labels(n int) string {
	var l []string
	for i := range n {
		l = append(l, fmt.Sprintf("k%d: v", i))
	}
	return strings.Join(l, ", ")
}

// validShops are accepted by both (besides config/samples).
var validShops = []invalidCase{
	{name: "empty spec", spec: `{}`},
	{name: "production", spec: `{environment: production, databases: {orders: {managed: {storageSize: 20Gi, storageClassName: ssd, version: "17"}}}}`},
	{name: "everything", spec: `
environment: testing
image: {repository: ghcr.io/shopplatform/shopd, tag: v0.1.0, pullPolicy: IfNotPresent}
workloads:
  frontend: {replicas: 3, logLevel: info, env: [{name: A, value: "1"}], autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 5, targetCPUUtilization: 70}}
databases:
  auth: {managed: {version: "16", storageSize: 5Gi, ephemeral: false, backup: {enabled: true, schedule: "0 3 * * *", retain: 7}}}
  catalog: {external: {secretName: catalog-db}}
gateway: {hosts: [shop.example.com, "*.shop.example.com"], tlsSecretName: shop-tls, istio: {enabled: true, mtlsMode: STRICT}}
observability:
  collector: {replicas: 2, samplingPercentage: 10, tailSampling: true, slowTraceThreshold: 2s}
  jaeger: {enabled: true, mode: External, endpoint: "jaeger:4317"}
  loki: {enabled: true, mode: External, endpoint: "http://loki:3100/otlp"}
  datadog: {enabled: true, site: datadoghq.eu, apiKeySecretRef: {name: dd, key: api-key}}
  newRelic: {enabled: true, region: EU, licenseKeySecretRef: {name: nr, key: license}}
  prometheus: {serviceMonitors: true, rules: true, scrapeInterval: 30s, selectorLabels: {release: kps}}
  grafana: {dashboards: true, folder: Shop}
  alerting:
    routing: true
    slo: {availability: "99.9", latencyThreshold: 500ms, latencyTarget: "99"}
    receivers:
    - {name: pager, severity: critical, pagerDuty: {routingKeySecretRef: {name: pd, key: key}}}
    - {name: mail, email: {to: ops@example.com, smarthost: "smtp:25"}}
operations: {loadGenerator: {enabled: true, requestsPerSecond: 5}, syntheticCheck: {enabled: true, schedule: "*/5 * * * *"}}
`},
	// Fault injection outside production (the environment omitted is development), and in production when allowed.
	{name: "fault injection, environment omitted", spec: `operations: {faultInjection: {payment: {errorPercent: 100, latency: 500ms}}}`},
	{name: "fault injection in testing", spec: `{environment: testing, operations: {faultInjection: {payment: {errorPercent: 0, latency: 1m}}}}`},
	{name: "fault injection allowed in production", spec: `{environment: production, operations: {faultInjection: {allowInProduction: true, payment: {errorPercent: 5}}}}`},
	{name: "production allowing but not injecting", spec: `{environment: production, operations: {faultInjection: {allowInProduction: true}}}`},
	// Updates that keep the data.
	{name: "same storage size, other spelling", old: `databases: {orders: {managed: {storageSize: 1Gi}}}`, spec: `databases: {orders: {managed: {storageSize: 1024Mi}}}`},
	{name: "same storage class", old: `databases: {auth: {managed: {storageClassName: fast}}}`, spec: `{databases: {auth: {managed: {storageClassName: fast}}, orders: {managed: {backup: {retain: 3}}}}}`},
}

func TestInvalidShopsAreRefusedByBoth(t *testing.T) {
	ensureNamespace(t)
	for i, c := range invalidShops {
		t.Run(c.name, func(t *testing.T) {
			name := c.shopName
			if name == "" {
				name = fmt.Sprintf("invalid-%d", i)
			}
			obj, old := objects(t, name, c)
			v := validate.ForShop()
			_, errs := v.Validate(obj, old)
			ours := v.Error(obj, errs)
			if ours == nil {
				t.Fatalf("validate accepted it, want %q", c.want)
			}
			if !strings.Contains(ours.Error(), c.want) {
				t.Errorf("validate says\n  %s\nwant it to contain\n  %s", ours, c.want)
			}
			theirs := apply(t, obj, old)
			if theirs == nil {
				t.Fatalf("the API server accepted it, want %q", c.want)
			}
			if !strings.Contains(theirs.Error(), c.want) {
				t.Errorf("the API server says\n  %s\nwant it to contain\n  %s", theirs, c.want)
			}
			// Schema and CEL errors must read exactly as the API server's.
			if !strings.Contains(c.want, "unknown field") && ours.Error() != theirs.Error() {
				t.Errorf("messages differ:\n  validate:   %s\n  API server: %s", ours, theirs)
			}
		})
	}
}

func TestValidShopsAreAcceptedByBoth(t *testing.T) {
	ensureNamespace(t)
	cases := append([]invalidCase(nil), validShops...)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obj, old := objects(t, fmt.Sprintf("valid-%d", i), c)
			if errs := validate.Shop(obj, old); len(errs) > 0 {
				t.Fatalf("validate refused it: %v", errs)
			}
			if err := apply(t, obj, old); err != nil {
				t.Fatalf("the API server refused it: %v", err)
			}
		})
	}
	samples, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "*.yaml"))
	for _, path := range samples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range strings.Split(string(data), "\n---") {
				u := &unstructured.Unstructured{}
				if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
					t.Fatal(err)
				}
				if u.GetKind() != "Shop" {
					continue
				}
				u.SetNamespace(namespace)
				if errs := validate.Shop(u, nil); len(errs) > 0 {
					t.Fatalf("validate refused %s: %v", u.GetName(), errs)
				}
				if err := apply(t, u, nil); err != nil {
					t.Fatalf("the API server refused %s: %v", u.GetName(), err)
				}
			}
		})
	}
}

func TestDefaultsAreApplied(t *testing.T) {
	obj := shop(t, "defaults", `{}`)
	out, errs := validate.ForShop().Validate(obj, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if env, _, _ := unstructured.NestedString(out.Object, "spec", "environment"); env != "development" {
		t.Errorf("spec.environment = %q, want the CRD default development", env)
	}
	if _, found, _ := unstructured.NestedString(obj.Object, "spec", "environment"); found {
		t.Error("Validate modified its argument")
	}
}

func TestWrongKind(t *testing.T) {
	obj := shop(t, "x", `{}`)
	obj.SetKind("Store")
	if errs := validate.Shop(obj, nil); len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "expected apiVersion commerce.shopplatform.io/v1alpha1 and kind Shop") {
		t.Fatalf("got %v", errs)
	}
}

func objects(t *testing.T, name string, c invalidCase) (obj, old *unstructured.Unstructured) {
	obj = shop(t, name, c.spec)
	if c.old != "" {
		old = shop(t, name, c.old)
	}
	return obj, old
}

// apply creates obj on the API server, or creates old and updates it to obj.
// Unknown fields are refused as kubectl does by default (strict).
func apply(t *testing.T, obj, old *unstructured.Unstructured) error {
	t.Helper()
	ctx := context.Background()
	strict := client.FieldValidation(metav1.FieldValidationStrict)
	if old == nil {
		return env.Client.Create(ctx, obj.DeepCopy(), strict)
	}
	stored := old.DeepCopy()
	if err := env.Client.Create(ctx, stored, strict); err != nil {
		t.Fatalf("creating the old object: %v", err)
	}
	update := obj.DeepCopy()
	update.SetResourceVersion(stored.GetResourceVersion())
	return env.Client.Update(ctx, update, strict)
}

func ensureNamespace(t *testing.T) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
}

func TestNewRefusesACRDTheAPIServerWouldRefuse(t *testing.T) {
	broken := strings.Replace(string(crd.Shop), "size(self.metadata.name) <= 40", "size(self.metadata.name) <= ”40”", 1)
	if broken == string(crd.Shop) {
		t.Fatal("the name rule is not in the CRD any more: update this test")
	}
	_, err := validate.New([]byte(broken))
	if err == nil || !strings.Contains(err.Error(), "compilation failed") {
		t.Fatalf("New = %v, want a compilation error", err)
	}
}

func BenchmarkValidate(b *testing.B) {
	v := validate.ForShop()
	u := &unstructured.Unstructured{}
	doc := "apiVersion: commerce.shopplatform.io/v1alpha1\nkind: Shop\nmetadata: {name: demo, namespace: shop}\nspec:\n" + indent(validShops[2].spec)
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, errs := v.Validate(u, nil); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
