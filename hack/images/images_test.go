package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"sigs.k8s.io/yaml"
)

var testOpts = Options{Root: "../..", Version: "1.2.3", Revision: "0123456789abcdef", Arch: "amd64", Epoch: 1700000000, Registry: "ghcr.io/shopplatform"}

// built holds both images, built once for every test in the package.
var built = map[string]Result{}

// cleanups run when every test has finished (shared temp dirs).
var cleanups []func()

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		code := m.Run()
		for _, c := range cleanups {
			c()
		}
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", "images-test-")
	if err != nil {
		panic(err)
	}
	for _, s := range Specs() {
		res, err := BuildTarball(s, testOpts, dir)
		if err != nil {
			os.RemoveAll(dir)
			panic(err)
		}
		built[s.Name] = res
	}
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func load(t *testing.T, imageName string) (v1.Image, *v1.ConfigFile) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds images")
	}
	img := readOCIArchive(t, built[imageName].Path)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return img, cf
}

func TestImageConfig(t *testing.T) {
	t.Parallel()
	for _, s := range Specs() {
		t.Run(s.Name, func(t *testing.T) {
			img, cf := load(t, s.Name)
			if got := cf.Config.User; got != "65532:65532" {
				t.Errorf("User = %q, want 65532:65532", got)
			}
			if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != s.Binary {
				t.Errorf("Entrypoint = %q, want [%s]", got, s.Binary)
			}
			if len(cf.Config.Cmd) != 0 {
				t.Errorf("Cmd = %q, want none (the Deployment passes args)", cf.Config.Cmd)
			}
			if cf.Config.WorkingDir != "/" || cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("WorkingDir, OS, Architecture = %q, %q, %q", cf.Config.WorkingDir, cf.OS, cf.Architecture)
			}
			want := map[string]string{
				"org.opencontainers.image.title":    s.Title,
				"org.opencontainers.image.version":  "1.2.3",
				"org.opencontainers.image.source":   "https://github.com/shopplatform/shop-operator",
				"org.opencontainers.image.revision": "0123456789abcdef",
				"org.opencontainers.image.licenses": "Apache-2.0",
			}
			for k, v := range want {
				if got := cf.Config.Labels[k]; got != v {
					t.Errorf("label %s = %q, want %q", k, got, v)
				}
			}
			if cf.Created.Unix() != testOpts.Epoch {
				t.Errorf("Created = %v, want SOURCE_DATE_EPOCH %d", cf.Created, testOpts.Epoch)
			}
			if d, _ := img.Digest(); d != built[s.Name].Digest {
				t.Errorf("digest in the archive %s, built %s", d, built[s.Name].Digest)
			}
			mt, err := img.MediaType()
			if err != nil || mt != "application/vnd.oci.image.manifest.v1+json" {
				t.Errorf("manifest media type = %q, %v", mt, err)
			}

			files := extract(t, img)
			exe, ok := files[s.Binary[1:]]
			if !ok {
				t.Fatalf("%s not in the image", s.Binary)
			}
			if exe.mode&0o111 == 0 {
				t.Errorf("%s mode %o is not executable", s.Binary, exe.mode)
			}
			assertStatic(t, exe.data)
			if !bytes.Contains(files["etc/passwd"].data, []byte("nonroot:x:65532:65532:")) {
				t.Errorf("/etc/passwd has no nonroot user 65532:\n%s", files["etc/passwd"].data)
			}
			if !bytes.Contains(files["etc/ssl/certs/ca-certificates.crt"].data, []byte("BEGIN CERTIFICATE")) {
				t.Error("no CA certificates in /etc/ssl/certs/ca-certificates.crt")
			}
		})
	}
}

// TestReproducible builds each image twice more, into two directories: the
// digests and the tarballs' bytes must be equal. A developer tree can change
// under a build (others edit while tests run), so a difference is retried a
// bounded number of times; a build that is not reproducible differs every time.
func TestReproducible(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds images")
	}
	for _, s := range Specs() {
		const attempts = 3
		var diff string
		for i := 0; i < attempts; i++ {
			a, err := BuildTarball(s, testOpts, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			b, err := BuildTarball(s, testOpts, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			diff = ""
			if a.Digest != b.Digest {
				diff = fmt.Sprintf("digest %s, then %s", a.Digest, b.Digest)
			} else if fileSum(t, a.Path) != fileSum(t, b.Path) {
				diff = "same digest, different tarball bytes"
			}
			if diff == "" {
				break
			}
			t.Logf("%s: attempt %d: %s (did the sources change during the build?)", s.Name, i+1, diff)
		}
		if diff != "" {
			t.Errorf("%s is not reproducible: %s", s.Name, diff)
		}
	}
}

// TestOperatorDeployment: config/manager/manager.yaml runs the image with
// runAsNonRoot and no runAsUser, so the kubelet needs a numeric, non-zero
// User in the image config to let the pod start.
func TestOperatorDeployment(t *testing.T) {
	t.Parallel()
	_, cf := load(t, "shop-operator")
	deps := deployments(t, mustRead(t, filepath.Join(testOpts.Root, "config/manager/manager.yaml")))
	if len(deps) != 1 {
		t.Fatalf("%d Deployments in config/manager/manager.yaml, want 1", len(deps))
	}
	pod := deps[0].Spec.Template.Spec
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Fatal("manager.yaml: the pod no longer sets runAsNonRoot; revisit this test")
	}
	uid := numericUID(t, cf.Config.User)
	if uid == 0 {
		t.Errorf("image User %q is root", cf.Config.User)
	}
	if u := pod.SecurityContext.RunAsUser; u != nil && *u != uid {
		t.Errorf("manager.yaml runAsUser %d, image User %d", *u, uid)
	}
	c := pod.Containers[0]
	// The manager in the image knows every flag the Deployment passes.
	help := runBinary(t, "shop-operator", "--help")
	for _, a := range c.Args {
		if help == "" {
			break // not runnable on this machine
		}
		flagName, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.Contains(help, "-"+flagName) {
			t.Errorf("manager.yaml passes %s; /manager --help does not list it:\n%s", a, help)
		}
	}
	if len(c.Command) != 0 {
		t.Errorf("manager.yaml overrides the entrypoint with %q", c.Command)
	}
	if c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("manager.yaml: expected readOnlyRootFilesystem (the image needs no writable path)")
	}
}

// TestShopdDeployment: the operator (`shopctl render`, the controller's code
// path) runs every service of every sample Shop from the shopd image as UID
// 65532 with args [<service>] and no command.
func TestShopdDeployment(t *testing.T) {
	t.Parallel()
	_, cf := load(t, "shopd")
	uid := numericUID(t, cf.Config.User)
	seen := map[string]int{} // service -> containers
	for _, d := range deployments(t, renderSamples(t)) {
		pod := d.Spec.Template.Spec
		for _, c := range pod.Containers {
			if !strings.HasPrefix(c.Image, built["shopd"].Ref.Context().Name()+":") {
				continue // not a commerce service (Postgres, Jaeger, ...)
			}
			seen[c.Name]++
			if u := pod.SecurityContext.RunAsUser; u == nil || *u != uid {
				t.Errorf("%s: runAsUser %v, image User %d", d.Metadata.Name, u, uid)
			}
			if len(c.Command) != 0 {
				t.Errorf("%s/%s: command %q overrides the entrypoint %q", d.Metadata.Name, c.Name, c.Command, cf.Config.Entrypoint)
			}
			if len(c.Args) != 1 || c.Args[0] != c.Name {
				t.Errorf("%s/%s: args %q, want [%s]", d.Metadata.Name, c.Name, c.Args, c.Name)
			}
		}
	}
	for _, svc := range []string{"auth", "catalog", "orders", "payment", "frontend"} {
		if seen[svc] != 3 {
			t.Errorf("%d %s containers in the three samples, want 3 (all seen: %v)", seen[svc], svc, seen)
		}
	}
	if cf.Config.Entrypoint[0] != "/shopd" {
		t.Errorf("Entrypoint = %q", cf.Config.Entrypoint)
	}
	// Without a service argument shopd prints the services it knows.
	usage := runBinary(t, "shopd")
	for _, svc := range []string{"auth", "catalog", "orders", "payment", "frontend"} {
		if usage != "" && !strings.Contains(usage, svc) {
			t.Errorf("shopd usage does not list %s: %s", svc, usage)
		}
	}
}

var rendered struct {
	once sync.Once
	out  []byte
	err  error
}

// renderSamples is `shopctl render` (the controller's code path) of the
// three sample Shops, run once for every test that reads it.
func renderSamples(t *testing.T) []byte {
	t.Helper()
	rendered.once.Do(func() {
		args := []string{"run", "./cmd/shopctl", "render"}
		for _, env := range []string{"development", "testing", "production"} {
			args = append(args, "-f", "config/samples/commerce_v1alpha1_shop_"+env+".yaml")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = testOpts.Root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		rendered.out, rendered.err = cmd.Output()
		if rendered.err != nil {
			rendered.err = fmt.Errorf("shopctl render: %v\n%s", rendered.err, stderr.String())
		}
	})
	if rendered.err != nil {
		t.Fatal(rendered.err)
	}
	return rendered.out
}

// deployment has the fields of an apps/v1 Deployment these tests read.
type deployment struct {
	Kind     string
	Metadata struct{ Name string }
	Spec     struct {
		Template struct {
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot *bool  `json:"runAsNonRoot"`
					RunAsUser    *int64 `json:"runAsUser"`
				} `json:"securityContext"`
				Containers []struct {
					Name            string
					Image           string
					Command, Args   []string
					SecurityContext struct {
						ReadOnlyRootFilesystem *bool `json:"readOnlyRootFilesystem"`
					} `json:"securityContext"`
				}
			}
		}
	}
}

// deployments decodes the Deployments of a multi-document YAML stream.
func deployments(t *testing.T, stream []byte) []deployment {
	t.Helper()
	var out []deployment
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(stream), -1) {
		var d deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		if d.Kind == "Deployment" {
			out = append(out, d)
		}
	}
	return out
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSkopeoReadsArchive: an independent OCI implementation reads the
// archive and reports the same digest and config.
func TestSkopeoReadsArchive(t *testing.T) {
	t.Parallel()
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is missing: install the Debian package skopeo (make test-images installs it)")
	}
	for _, s := range Specs() {
		load(t, s.Name)
		res := built[s.Name]
		skopeoInspect(t, skopeo, res.Path, res.Digest.String(), s.Title)
	}
}

// skopeoInspect checks that skopeo reads the archive with digest and title.
func skopeoInspect(t *testing.T, skopeo, archive, digest, title string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	out, err := exec.CommandContext(ctx, skopeo, "inspect", "oci-archive:"+archive).Output()
	cancel()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v", archive, err)
	}
	var got struct {
		Digest string
		Labels map[string]string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got.Digest != digest || got.Labels["org.opencontainers.image.title"] != title {
		t.Errorf("skopeo sees %s %v in %s, built %s", got.Digest, got.Labels, archive, digest)
	}
}

// runBinary extracts the image's binary and runs it with args (bounded),
// when the image's architecture is this machine's: the static binary runs
// with nothing from the host.
func runBinary(t *testing.T, imageName string, args ...string) string {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != testOpts.Arch {
		t.Logf("cannot run a linux/%s binary here", testOpts.Arch)
		return ""
	}
	img, _ := load(t, imageName)
	var spec Spec
	for _, s := range Specs() {
		if s.Name == imageName {
			spec = s
		}
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(spec.Binary))
	if err := os.WriteFile(bin, extract(t, img)[spec.Binary[1:]].data, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{}           // nothing from the host
	out, _ := cmd.CombinedOutput() // usage exits non-zero; the text is what counts
	return string(out)
}

// readOCIArchive untars an OCI layout and returns its one image, checking
// that the index names it with the tag.
func readOCIArchive(t *testing.T, path string) v1.Image {
	t.Helper()
	return readOCIArchiveTag(t, path, testOpts.Version)
}

// readOCIArchiveTag is readOCIArchive for an image tagged tag.
func readOCIArchiveTag(t *testing.T, path, tag string) v1.Image {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(m.Manifests))
	}
	if got := m.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != tag {
		t.Errorf("ref.name annotation = %q, want %q", got, tag)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func numericUID(t *testing.T, user string) int64 {
	t.Helper()
	u, _, _ := strings.Cut(user, ":")
	n, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		t.Fatalf("image User %q is not numeric: runAsNonRoot cannot verify a user name", user)
	}
	return n
}

type entry struct {
	mode   int64
	data   []byte
	typ    byte   // tar.TypeReg, TypeDir, TypeSymlink
	link   string // a symlink's target
	uid    int
	xattrs map[string]string
}

func extract(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		e := entry{mode: h.Mode, data: b, typ: h.Typeflag, link: h.Linkname, uid: h.Uid}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.xattrs == nil {
					e.xattrs = map[string]string{}
				}
				e.xattrs[x] = v
			}
		}
		files[strings.TrimSuffix(h.Name, "/")] = e
	}
}

// assertStatic fails unless b is an ELF executable without a program
// interpreter (PT_INTERP): nothing to load from a scratch image.
func assertStatic(t *testing.T, b []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not an ELF binary: %v", err)
	}
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("machine %v, want x86-64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has PT_INTERP: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary imports %v", libs)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
