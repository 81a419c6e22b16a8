package apidocs

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shopplatform/shop-operator/config/crd"
)

var update = flag.Bool("update", false, "rewrite docs/api-reference.md")

const reference = "../../docs/api-reference.md"

// TestReferenceIsCurrent fails when docs/api-reference.md no longer matches
// the CRD (run with -update after `make manifests`).
func TestReferenceIsCurrent(t *testing.T) {
	got, err := Generate(crd.Shop)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(reference, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(reference)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Error("docs/api-reference.md is stale: run go test ./internal/apidocs -update")
	}
	for _, field := range []string{"`spec.environment`", "`spec.databases.orders.external.secretName`", "`status.conditions[].type`"} {
		if !strings.Contains(string(got), field) {
			t.Errorf("the reference lacks %s", field)
		}
	}
}

// TestDocLinksResolve checks every relative link in README.md, DEVELOPERS.md
// and docs/ points at a file or directory that exists.
func TestDocLinksResolve(t *testing.T) {
	root := filepath.Join("..", "..")
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	runbooks, _ := filepath.Glob(filepath.Join(root, "docs", "runbooks", "*.md"))
	files = append(files, runbooks...)
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "DEVELOPERS.md"))
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	// Code is not prose: links inside code blocks and spans are not links.
	code := regexp.MustCompile("(?s)```.*?```|`[^`\n]*`")
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(code.ReplaceAllString(string(data), ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
			}
		}
	}
	if checked == 0 {
		t.Error("no links found: the check looks at nothing")
	}
}
