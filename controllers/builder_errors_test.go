package controllers

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/status"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

// outcome is what a user sees of a spec that a builder refuses.
type outcome int

const (
	// refusedByCRD: kubectl apply fails with the CRD's message (a CEL rule
	// or a pattern); the builder would refuse the spec too.
	refusedByCRD outcome = iota + 1
	// stalled: the API server accepts the spec; the Shop reports
	// Stalled=True (RenderFailed) with the builder's message.
	stalled
	// defaulted: the profile fills in what the error is about: it renders.
	defaulted
)

// builderErrorCases are specs that reach the errors the builders return,
// and what their user sees.
var builderErrorCases = []struct {
	name    string
	sites   []string // the error sites (see errorSites) the spec goes through
	spec    func(*shopv1.ShopSpec)
	outcome outcome
	crd     string // refusedByCRD: in the API server's message
	builder string // in the builder's error (and so in Stalled's message)
}{
	{
		name:    "a backup schedule that never runs twice",
		sites:   []string{"backups/build.go: databases.%s.managed.backup.schedule: %w", "backups/rules.go: schedule %q never runs twice", "engine/engine.go: rendering %s: %w"},
		spec:    backupSchedule("0 0 30 2 *"),
		outcome: stalled,
		builder: `databases.orders.managed.backup.schedule: schedule "0 0 30 2 *" never runs twice`,
	},
	{
		name:    "a backup schedule out of range",
		sites:   []string{"backups/build.go: databases.%s.managed.backup.schedule: %w"},
		spec:    backupSchedule("61 * * * *"),
		outcome: stalled,
		builder: "databases.orders.managed.backup.schedule: end of range (61) above maximum (59)",
	},
	{
		name:    "a backup schedule that is not cron",
		sites:   []string{"backups/build.go: databases.%s.managed.backup.schedule: %w"},
		spec:    backupSchedule("every day"),
		outcome: refusedByCRD,
		crd:     "spec.databases.orders.managed.backup.schedule: Invalid value",
		builder: "databases.orders.managed.backup.schedule: expected exactly 5 fields",
	},
	{
		name:    "backups enabled without a schedule",
		sites:   []string{"backups/build.go: databases.%s.managed.backup: enabled without a schedule"},
		spec:    backupSchedule(""),
		outcome: defaulted,
	},
	{
		name:    "a synthetic check schedule that never runs twice",
		sites:   []string{"operations/build.go: operations.syntheticCheck.schedule: %w"},
		spec:    syntheticSchedule("0 0 30 2 *"),
		outcome: stalled,
		builder: `operations.syntheticCheck.schedule: schedule "0 0 30 2 *" never runs twice`,
	},
	{
		name:    "a synthetic check schedule that is not cron",
		sites:   []string{"operations/build.go: operations.syntheticCheck.schedule: %w"},
		spec:    syntheticSchedule("*/5 * * *"),
		outcome: refusedByCRD,
		crd:     "spec.operations.syntheticCheck.schedule: Invalid value",
		builder: "operations.syntheticCheck.schedule: expected exactly 5 fields",
	},
	{
		name:  "an SLO latency threshold that is no bucket boundary",
		sites: []string{"monitoring/rules.go: alerting.slo.latencyThreshold %s is not a bucket boundary of %s; use one of %s"},
		spec: withRules(func(s *shopv1.ShopSpec) {
			s.Observability.Alerting.SLO.LatencyThreshold = &metav1.Duration{Duration: 300 * time.Millisecond}
		}),
		outcome: refusedByCRD,
		crd:     "alerting.slo.latencyThreshold is not a bucket boundary of http.server.request.duration",
		builder: "alerting.slo.latencyThreshold 300ms is not a bucket boundary",
	},
	{
		name:    "an SLO availability of 100%",
		sites:   []string{"monitoring/rules.go: %s %q is not a percentage between 0 and 100"},
		spec:    withRules(func(s *shopv1.ShopSpec) { s.Observability.Alerting.SLO.Availability = "100" }),
		outcome: refusedByCRD,
		crd:     "spec.observability.alerting.slo.availability: Invalid value",
		builder: `alerting.slo.availability "100" is not a percentage between 0 and 100`,
	},
	{
		name:    "an SLO latency target that is no number",
		sites:   []string{"monitoring/rules.go: %s %q is not a percentage between 0 and 100"},
		spec:    withRules(func(s *shopv1.ShopSpec) { s.Observability.Alerting.SLO.LatencyTarget = "high" }),
		outcome: refusedByCRD,
		crd:     "spec.observability.alerting.slo.latencyTarget: Invalid value",
		builder: `alerting.slo.latencyTarget "high" is not a percentage between 0 and 100`,
	},
	{
		name:  "an alert receiver named none",
		sites: []string{"monitoring/alertmanager.go: alerting.receivers: the name %q is reserved for alerts no receiver takes; rename that receiver"},
		spec: func(s *shopv1.ShopSpec) {
			s.Observability.Alerting.Routing = ptr.To(true)
			s.Observability.Alerting.Receivers = []shopv1.Receiver{{Name: monitoring.NoneReceiver,
				Webhook: &shopv1.WebhookReceiver{URLSecretRef: shopv1.SecretKeyRef{Name: "hook", Key: "url"}}}}
		},
		outcome: refusedByCRD,
		crd:     "alerting.receivers: the name 'none' is reserved",
		builder: `alerting.receivers: the name "none" is reserved`,
	},
}

// internalErrors are the error sites no spec reaches, and why.
var internalErrors = map[string]string{
	"backups/build.go: the %s database is not managed by the operator: restore it with your database's own tools":      "RestoreJob is no part of the desired state: shopctl db restore returns it to its user",
	"render/lookup.go: generated Secret %s has no values: engine.Prepare must fill it before rendering (secrets.Fill)": "engine.Prepare fills every generated Secret before rendering",
	"render/lookup.go: generated Secret %s lacks key %s":                                                               "engine.Prepare fills every generated Secret before rendering",
	"engine/prepare.go: reading Secret %s: %w":                                                                         "the API server failed to answer: retried (ReconcileFailed), whatever the spec",
	"dashboards/build.go: dashboard %s: %w":                                                                            "the dashboards are built from code, not from the spec; the dashboards' tests build every one",
	"engine/engine.go: %s and %s both render %s":                                                                       "two builders rendering one object is a bug in the builders; the engine's tests render every profile",
}

func backupSchedule(schedule string) func(*shopv1.ShopSpec) {
	return func(s *shopv1.ShopSpec) {
		s.Databases.Orders.Managed = &shopv1.ManagedDatabase{Backup: &shopv1.BackupSpec{Enabled: ptr.To(true), Schedule: schedule}}
	}
}

func syntheticSchedule(schedule string) func(*shopv1.ShopSpec) {
	return func(s *shopv1.ShopSpec) {
		s.Operations.SyntheticCheck = shopv1.SyntheticCheckSpec{Enabled: ptr.To(true), Schedule: schedule}
	}
}

// withRules switches the alerting rules on, where the SLOs are rendered.
func withRules(change func(*shopv1.ShopSpec)) func(*shopv1.ShopSpec) {
	return func(s *shopv1.ShopSpec) {
		s.Observability.Prometheus.Rules = ptr.To(true)
		change(s)
	}
}

// TestEveryBuilderErrorIsRefusedOrStalled walks every error a builder (or
// the engine) returns, found in their source, and proves how a user meets
// it: refused by the CRD at kubectl apply, or accepted and reported as
// Stalled with the builder's message, or not reachable from a spec at all
// (with the reason). A new error in a builder fails this test until it is
// given a case here.
func TestEveryBuilderErrorIsRefusedOrStalled(t *testing.T) {
	sites := errorSites(t)
	covered := map[string]bool{}
	for site := range internalErrors {
		covered[site] = true
	}
	for _, c := range builderErrorCases {
		for _, site := range c.sites {
			covered[site] = true
		}
	}
	for _, site := range sites {
		if !covered[site] {
			t.Errorf("no case for the builder error %q: give it a spec in builderErrorCases (refused by the CRD or Stalled), or a reason in internalErrors", site)
		}
		delete(covered, site)
	}
	for site := range covered {
		t.Errorf("builderErrorCases or internalErrors name %q, which no builder returns any more", site)
	}

	ns := namespace(t)
	for i, c := range builderErrorCases {
		t.Run(c.name, func(t *testing.T) {
			spec := shopv1.ShopSpec{}
			c.spec(&spec)
			shop := newShop(ns, fmt.Sprintf("e%d", i), spec)

			// What the builders make of the spec, had the API server let it in.
			_, err := engine.Desired(rendertest.InputFor(shop, render.AllAPIs))
			switch {
			case c.outcome == defaulted && err != nil:
				t.Fatalf("the builders refuse a spec the profile should complete: %v", err)
			case c.outcome != defaulted && (err == nil || !strings.Contains(err.Error(), c.builder)):
				t.Fatalf("the builders say %v, want an error with %q", err, c.builder)
			}

			err = k8s.Create(ctx, shop.DeepCopy(), client.DryRunAll)
			if c.outcome == refusedByCRD {
				if err == nil || !strings.Contains(err.Error(), c.crd) {
					t.Fatalf("the API server says %v, want a refusal with %q", err, c.crd)
				}
				return
			}
			if err != nil {
				t.Fatalf("the API server refuses the spec: %v", err)
			}
			if c.outcome != stalled {
				return
			}
			if err := k8s.Create(ctx, shop); err != nil {
				t.Fatal(err)
			}
			s := waitCondition(t, ns, shop.Name, shopv1.ConditionStalled, metav1.ConditionTrue)
			if _, reason, msg := condition(s, shopv1.ConditionStalled); reason != status.ReasonRenderFailed || !strings.Contains(msg, c.builder) {
				t.Errorf("Stalled = %s: %q, want %s with %q", reason, msg, status.ReasonRenderFailed, c.builder)
			}
			if st, _, _ := condition(s, shopv1.ConditionReady); st != metav1.ConditionFalse {
				t.Errorf("Ready = %s, want False", st)
			}
		})
	}

	// The CRD's list of latency buckets is monitoring.LatencyBuckets.
	t.Run("every latency bucket is accepted", func(t *testing.T) {
		for _, b := range monitoring.LatencyBuckets {
			d := time.Duration(b * float64(time.Second))
			spec := withRules(func(s *shopv1.ShopSpec) {
				s.Observability.Alerting.SLO.LatencyThreshold = &metav1.Duration{Duration: d}
			})
			shop := newShop(ns, "bucket", shopv1.ShopSpec{})
			spec(&shop.Spec)
			if err := k8s.Create(ctx, shop, client.DryRunAll); err != nil {
				t.Errorf("latencyThreshold %s: %v", d, err)
			}
		}
	})
}

// errorSites finds every error the builders, and the engine and render
// helpers they call, make themselves (fmt.Errorf and errors.New with a
// literal message), as "<dir>/<file>: <message>", relative to
// internal/builders (the others as engine/engine.go, render/lookup.go).
func errorSites(t *testing.T) []string {
	t.Helper()
	root := filepath.Join(testenv.RepoRoot(), "internal")
	var files []string
	for _, dir := range []string{"builders", "engine", "render"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	fset := token.NewFileSet()
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(filepath.Join(root, "builders"), path)
		if strings.HasPrefix(rel, "..") {
			rel, _ = filepath.Rel(root, path)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok || !(pkg.Name == "fmt" && sel.Sel.Name == "Errorf" || pkg.Name == "errors" && sel.Sel.Name == "New") {
				return true
			}
			msg := "(not a literal)"
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				msg, _ = strconv.Unquote(lit.Value)
			}
			seen[filepath.ToSlash(rel)+": "+msg] = true
			return true
		})
	}
	if len(seen) < 10 {
		t.Fatalf("found only %d error sites in %d files: is the walk broken?", len(seen), len(files))
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
