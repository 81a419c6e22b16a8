// Package lint runs kube-score (github.com/zegl/kube-score), a linter written
// by others, over what `shopctl render` prints for each profile's sample Shop
// (config/samples), and compares its findings with one reviewed file,
// kube-score-accepted.yaml: each finding that stays (check, grade, object,
// container), with the reason. A new finding fails the test, and so does an
// accepted one that no longer occurs (or changed grade), so the file stays
// true. It lives here, not in a builder package, because it
// reads every builder's output at once (as test/contract does).
//
// kube-score comes from hack/kube-score.sh (built once, cached by version
// outside the repo) or SHOP_KUBE_SCORE; without it the test fails.
package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/shopplatform/shop-operator/internal/cli"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

// profiles are the environments whose sample Shops are linted, each in
// config/samples/commerce_v1alpha1_shop_<profile>.yaml.
var profiles = []string{"development", "testing", "production"}

const acceptedFile = "kube-score-accepted.yaml"

// accepted is one reviewed kube-score check at one grade: the findings that
// stay and why. The grade is part of a finding, so one that gets worse (or
// better) is reviewed again.
type accepted struct {
	Check  string `json:"check"`
	Grade  string `json:"grade"` // critical, warning or almost-ok
	Reason string `json:"reason"`
	// Findings are "<profile> <Kind>/<name> [<container>]", the container
	// left out for a finding about the whole object.
	Findings []string `json:"findings"`
}

// scored is the part of kube-score's JSON output the test reads.
type scored struct {
	TypeMeta struct {
		Kind string `json:"kind"`
	} `json:"type_meta"`
	ObjectMeta struct {
		Name string `json:"name"`
	} `json:"object_meta"`
	Checks []struct {
		Check struct {
			ID string `json:"id"`
		} `json:"check"`
		Grade    int  `json:"grade"`
		Skipped  bool `json:"skipped"`
		Comments []struct {
			Path    string `json:"path"`
			Summary string `json:"summary"`
		} `json:"comments"`
	} `json:"checks"`
}

// kube-score's grades (scorecard.Grade): below allOK is a finding.
const (
	gradeCritical = 1
	gradeWarning  = 5
	gradeAlmostOK = 7 // printed as OK by --output-format ci, still a finding
	gradeAllOK    = 10
)

var gradeNames = map[int]string{gradeCritical: "critical", gradeWarning: "warning", gradeAlmostOK: "almost-ok"}

// finding is one thing kube-score reports: a check at a grade on one
// object, or on one of its containers ("<profile> <Kind>/<name> [<container>]").
type finding struct{ check, grade, what string }

func TestKubeScore(t *testing.T) {
	bin := kubeScore(t)
	want := readAccepted(t)
	for _, profile := range profiles {
		t.Run(profile, func(t *testing.T) {
			got, counts := score(t, bin, profile, renderSample(t, profile))
			t.Logf("kube-score on the %s sample: %d OK, %d critical, %d warning (counted as --output-format ci prints them)",
				profile, counts[gradeAllOK]+counts[gradeAlmostOK], counts[gradeCritical], counts[gradeWarning])
			var added, gone []string
			byCheck := map[string][]string{}
			for f, summary := range got {
				if !want[f] {
					head := fmt.Sprintf("- check: %s\n  grade: %s\n  findings:", f.check, f.grade)
					byCheck[head] = append(byCheck[head], fmt.Sprintf("  - %s    # %s", f.what, summary))
				}
			}
			for head, lines := range byCheck {
				slices.Sort(lines)
				added = append(added, head+"\n"+strings.Join(lines, "\n"))
			}
			for f := range want {
				if _, ok := got[f]; !ok && strings.HasPrefix(f.what, profile+" ") {
					gone = append(gone, fmt.Sprintf("  %s (%s): %s", f.check, f.grade, f.what))
				}
			}
			slices.Sort(added)
			slices.Sort(gone)
			if len(added) > 0 {
				t.Errorf("kube-score reports what %s does not accept: fix the builder, or list each finding under its check with the reason it stays:\n%s",
					acceptedFile, strings.Join(added, "\n"))
			}
			if len(gone) > 0 {
				t.Errorf("%s accepts findings that kube-score no longer reports: remove them:\n%s",
					acceptedFile, strings.Join(gone, "\n"))
			}
		})
	}
}

// kubeScore finds the kube-score binary: SHOP_KUBE_SCORE, or built (or found
// cached) by hack/kube-score.sh.
func kubeScore(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("SHOP_KUBE_SCORE")
	if bin == "" {
		var stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "hack", "kube-score.sh"))
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kube-score: hack/kube-score.sh failed: %v\n%s", err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		bin = lines[len(lines)-1]
	}
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("kube-score not found (run hack/kube-score.sh or set SHOP_KUBE_SCORE): %v", err)
	}
	return bin
}

// readAccepted reads the reviewed file, refusing an entry without a reason,
// a finding listed twice, or one that names no profile.
func readAccepted(t *testing.T) map[finding]bool {
	t.Helper()
	data, err := os.ReadFile(acceptedFile)
	if err != nil {
		t.Fatal(err)
	}
	var entries []accepted
	if err := yaml.UnmarshalStrict(data, &entries); err != nil {
		t.Fatalf("%s: %v", acceptedFile, err)
	}
	out := map[finding]bool{}
	for _, e := range entries {
		if e.Check == "" || strings.TrimSpace(e.Reason) == "" || len(e.Findings) == 0 {
			t.Fatalf("%s: every entry needs a check, findings and the reason they stay: %+v", acceptedFile, e)
		}
		if !slices.Contains(slices.Collect(maps.Values(gradeNames)), e.Grade) {
			t.Fatalf("%s: %s: grade %q, want critical, warning or almost-ok", acceptedFile, e.Check, e.Grade)
		}
		for _, what := range e.Findings {
			f := finding{e.Check, e.Grade, what}
			if out[f] {
				t.Fatalf("%s: %q is listed twice under %s (%s)", acceptedFile, what, e.Check, e.Grade)
			}
			if p, _, _ := strings.Cut(what, " "); !slices.Contains(profiles, p) {
				t.Fatalf("%s: %q does not start with a profile (%s)", acceptedFile, what, strings.Join(profiles, ", "))
			}
			out[f] = true
		}
	}
	return out
}

// renderSample is `shopctl render -f <the profile's sample>`, offline.
func renderSample(t *testing.T, profile string) []byte {
	t.Helper()
	sample := filepath.Join(testenv.RepoRoot(), "config", "samples", "commerce_v1alpha1_shop_"+profile+".yaml")
	root := cli.NewRoot("shopctl")
	var out, stderr bytes.Buffer
	root.SetArgs([]string{"render", "-f", sample})
	root.SetIn(strings.NewReader(""))
	root.SetOut(&out)
	root.SetErr(&stderr)
	if code := cli.Execute(root, &stderr); code != 0 {
		t.Fatalf("shopctl render -f %s: exit %d: %s", sample, code, stderr.String())
	}
	return out.Bytes()
}

// score runs kube-score on one profile's render and returns its findings,
// each with kube-score's summaries, and the counts per grade as its ci
// output prints them (one per comment, or one per check without comments).
func score(t *testing.T, bin, profile string, manifests []byte) (map[finding]string, map[int]int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), profile+".yaml")
	if err := os.WriteFile(file, manifests, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "score", "--output-format", "json", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// kube-score exits 1 when it finds something critical.
	if exit := (*exec.ExitError)(nil); err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 1) {
		t.Fatalf("kube-score score: %v\n%s", err, stderr.String())
	}
	var objs []scored
	if err := json.Unmarshal(out, &objs); err != nil {
		t.Fatalf("kube-score's JSON: %v\n%s%s", err, out, stderr.String())
	}
	if len(objs) == 0 {
		t.Fatalf("kube-score scored nothing\n%s", stderr.String())
	}
	findings := map[finding]string{}
	counts := map[int]int{}
	for _, o := range objs {
		object := profile + " " + o.TypeMeta.Kind + "/" + o.ObjectMeta.Name
		for _, c := range o.Checks {
			if c.Skipped {
				continue
			}
			counts[c.Grade] += max(len(c.Comments), 1)
			if c.Grade >= gradeAllOK {
				continue
			}
			grade, ok := gradeNames[c.Grade]
			if !ok {
				t.Fatalf("kube-score graded %s on %s %d, a grade this test does not know", c.Check.ID, object, c.Grade)
			}
			if len(c.Comments) == 0 {
				findings[finding{c.Check.ID, grade, object}] = ""
			}
			for _, cm := range c.Comments {
				f := finding{c.Check.ID, grade, strings.TrimSpace(object + " " + cm.Path)}
				findings[f] = strings.TrimPrefix(findings[f]+"; "+cm.Summary, "; ")
			}
		}
	}
	return findings, counts
}
