package controllers

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated table of the operator's permissions in docs/security.md")

// permission is one (API group, resource[/subresource], verb).
type permission struct{ group, resource, verb string }

func (p permission) String() string {
	g := p.group
	if g == "" {
		g = "core"
	}
	return g + " " + p.resource + " " + p.verb
}

// operatorRoleIsMinimal (reported as TestOperatorRoleIsMinimal) compares
// config/rbac/role.yaml with what the operator did during the whole suite,
// read from the API server's audit log: every permission the role grants must
// have been used (or be needed to grant it in a Role the operator created:
// Kubernetes lets it grant only what it holds), and nothing the operator
// asked for may have been refused. TestMain runs it after every test (see
// afterSuite), whatever order they ran in, when no -run or -skip left some
// out.
func operatorRoleIsMinimal(t checker) {
	granted := roleGrants(t)
	start := time.Now()
	used, refused := operatorRequests(t, auditLog)
	if fi, err := os.Stat(auditLog); err == nil {
		t.Logf("audit log: %.1f MB read in %v", float64(fi.Size())/1e6, time.Since(start).Round(time.Millisecond))
	}
	if len(used) < 20 {
		t.Fatalf("only %d permissions used: is the audit log complete?", len(used))
	}
	for _, p := range refused {
		t.Errorf("refused to the operator: %s", p)
	}
	delegated := grantedInOwnedRoles(t)
	for p := range granted {
		if !used[p] && !delegated[p] {
			t.Errorf("config/rbac/role.yaml grants %s, which the suite never used: exercise it in a test or drop it from the +kubebuilder:rbac markers", p)
		}
	}
	checkDocTable(t, permissionTable(granted, used, delegated))
	t.Logf("role grants %d permissions; the operator used %d, delegates %d", len(granted), len(used), len(delegated))
}

// roleGrants expands the ClusterRole that config/rbac ships.
func roleGrants(t checker) map[permission]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		t.Fatal(err)
	}
	return expand(role.Rules)
}

func expand(rules []rbacv1.PolicyRule) map[permission]bool {
	out := map[permission]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out[permission{g, res, v}] = true
				}
			}
		}
	}
	return out
}

// operatorRequests reads the audit log: the permissions the operator's
// identity used, and those RBAC refused it.
func operatorRequests(t checker, path string) (map[permission]bool, []permission) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	used := map[permission]bool{}
	refusedSet := map[permission]bool{}
	dec := json.NewDecoder(f)
	events, mine := 0, 0
	defer func() { t.Logf("%d audit events, %d of them the operator's", events, mine) }()
	for {
		var ev auditv1.Event
		if err := dec.Decode(&ev); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		events++
		if !byOperator(&ev) || ev.ObjectRef == nil {
			continue // discovery (/api, /apis) needs no role
		}
		mine++
		resource := ev.ObjectRef.Resource
		if ev.ObjectRef.Subresource != "" {
			resource += "/" + ev.ObjectRef.Subresource
		}
		p := permission{ev.ObjectRef.APIGroup, resource, ev.Verb}
		if ev.Annotations["authorization.k8s.io/decision"] == "forbid" {
			refusedSet[p] = true
			continue
		}
		used[p] = true
		// A server-side apply that creates the object is a patch answered
		// 201, and the API server checks the create verb for it.
		if ev.Verb == "patch" && ev.ResponseStatus != nil && ev.ResponseStatus.Code == 201 {
			used[permission{p.group, p.resource, "create"}] = true
		}
		// An informer's first list is a streaming list (a watch sending the
		// initial objects) where the server offers it, and a list elsewhere.
		if ev.Verb == "watch" && strings.Contains(ev.RequestURI, "sendInitialEvents=true") {
			used[permission{p.group, p.resource, "list"}] = true
		}
	}
	var refused []permission
	for p := range refusedSet {
		refused = append(refused, p)
	}
	sort.Slice(refused, func(i, j int) bool { return refused[i].String() < refused[j].String() })
	return used, refused
}

// byOperator reports whether the operator's identity made the request: the
// suite's operator impersonates its ServiceAccount, a deployed one is it.
func byOperator(ev *auditv1.Event) bool {
	if ev.ImpersonatedUser != nil {
		return ev.ImpersonatedUser.Username == operatorUser
	}
	return ev.User.Username == operatorUser
}

// grantedInOwnedRoles collects the rules of every Role the operator created:
// it must hold them itself to grant them.
func grantedInOwnedRoles(t checker) map[permission]bool {
	t.Helper()
	roles := &rbacv1.RoleList{}
	if err := k8s.List(ctx, roles, client.MatchingLabels{render.LabelManagedBy: render.ManagedBy}); err != nil {
		t.Fatal(err)
	}
	var rules []rbacv1.PolicyRule
	for _, r := range roles.Items {
		rules = append(rules, r.Rules...)
	}
	return expand(rules)
}

// permissionTable renders the role as a Markdown table: one row per group and
// resource, the verbs, and why the operator holds them.
func permissionTable(granted, used, delegated map[permission]bool) string {
	type row struct{ group, resource string }
	verbs := map[row][]string{}
	why := map[row]map[string]bool{}
	for p := range granted {
		r := row{p.group, p.resource}
		verbs[r] = append(verbs[r], p.verb)
		if why[r] == nil {
			why[r] = map[string]bool{}
		}
		if used[p] {
			why[r]["called"] = true
		}
		if delegated[p] {
			why[r]["granted in the collector's Role"] = true
		}
	}
	rows := make([]row, 0, len(verbs))
	for r := range verbs {
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].group != rows[j].group {
			return rows[i].group < rows[j].group
		}
		return rows[i].resource < rows[j].resource
	})
	var b strings.Builder
	b.WriteString("| API group | resource | verbs | why |\n| --- | --- | --- | --- |\n")
	for _, r := range rows {
		sort.Strings(verbs[r])
		var reasons []string
		for k := range why[r] {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		g := r.group
		if g == "" {
			g = `"" (core)`
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", g, r.resource, strings.Join(verbs[r], ", "), strings.Join(reasons, "; "))
	}
	return b.String()
}

const (
	tableBegin = "<!-- BEGIN operator permissions: generated by TestOperatorRoleIsMinimal (go test ./controllers -update) -->\n"
	tableEnd   = "<!-- END operator permissions -->\n"
)

// checkDocTable compares the table in docs/security.md with the role, or
// rewrites it with -update.
func checkDocTable(t checker, table string) {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(), "docs", "security.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, tableBegin), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q ... %q markers", path, strings.TrimSpace(tableBegin), strings.TrimSpace(tableEnd))
	}
	current := doc[i+len(tableBegin) : j]
	if current == table {
		return
	}
	if !*updateDocs {
		t.Errorf("the operator's permissions in %s are stale; run go test ./controllers -update. Want:\n%s", path, table)
		return
	}
	if err := os.WriteFile(path, []byte(doc[:i+len(tableBegin)]+table+doc[j:]), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checker is what an after-suite check reports to: the part of testing.TB
// it uses.
type checker interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// wholeSuite reports whether every test of the package ran (no -run, no -skip).
func wholeSuite() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}

// afterSuite runs a check that reads what the whole suite made the operator
// do. TestMain calls it after m.Run, so the ordering is explicit and holds
// with -shuffle. It prints like go test and reports whether the check passed.
func afterSuite(name string, check func(checker)) bool {
	c := &suiteCheck{}
	start := time.Now()
	if testing.Verbose() {
		fmt.Printf("=== RUN   %s (after the suite)\n", name)
	}
	func() {
		defer func() {
			if r := recover(); r != nil && r != errCheckStopped {
				panic(r)
			}
		}()
		check(c)
	}()
	took := time.Since(start).Seconds()
	if c.failed || testing.Verbose() {
		for _, line := range c.lines {
			fmt.Println("    " + line)
		}
	}
	if c.failed {
		fmt.Printf("--- FAIL: %s (%.2fs)\n", name, took)
	} else if testing.Verbose() {
		fmt.Printf("--- PASS: %s (%.2fs)\n", name, took)
	}
	return !c.failed
}

var errCheckStopped = errors.New("check stopped")

// suiteCheck collects what one after-suite check reports.
type suiteCheck struct {
	failed bool
	lines  []string
}

func (c *suiteCheck) Helper() {}

func (c *suiteCheck) Logf(format string, args ...any) {
	c.lines = append(c.lines, fmt.Sprintf(format, args...))
}

func (c *suiteCheck) Errorf(format string, args ...any) {
	c.failed = true
	c.Logf(format, args...)
}

func (c *suiteCheck) Fatal(args ...any) { c.Fatalf("%s", fmt.Sprint(args...)) }

func (c *suiteCheck) Fatalf(format string, args ...any) {
	c.Errorf(format, args...)
	panic(errCheckStopped)
}
