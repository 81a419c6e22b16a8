package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The images `go run . -local` builds, with what the tests expect of them.
var wantLocal = []struct {
	ref        string
	user       string
	entrypoint []string
	cmd        []string
}{
	{"ghcr.io/shopplatform/shop-operator:1.2.3", "65532:65532", []string{"/manager"}, nil},
	{"ghcr.io/shopplatform/shopd:1.2.3", "65532:65532", []string{"/shopd"}, nil},
	{"localhost/shop-platform/pause:1", "65535:65535", []string{"/pause"}, nil},
	{"registry.k8s.io/coredns/coredns:v1.15.0", "65532:65532", []string{"/coredns"}, nil},
	{"docker.io/rancher/local-path-provisioner:v0.0.30", "0:0", []string{"local-path-provisioner"}, nil},
	{"ghcr.io/open-telemetry/opentelemetry-operator/opentelemetry-operator:0.140.0", "65532:65532", []string{"/manager"}, nil},
	{"quay.io/prometheuscommunity/postgres-exporter:v0.17.1", "65534:65534", []string{"/bin/postgres_exporter"}, nil},
	{"quay.io/prometheus-operator/prometheus-operator:v0.85.0", "65534:65534", []string{"/bin/operator"}, nil},
	{"quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0", "65534:65534", []string{"/bin/prometheus-config-reloader"}, nil},
	{"quay.io/prometheus/prometheus:v3.5.0", "65534:65534", []string{"/bin/prometheus"}, nil},
	{"quay.io/prometheus/alertmanager:v0.28.1", "65534:65534", []string{"/bin/alertmanager"}, nil},
	{"registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0", "65534:65534", []string{"/kube-state-metrics"}, nil},
	{"docker.io/jaegertracing/jaeger:2.11.0", "10001:10001", []string{"/jaeger"}, nil},
	{"localhost/shop-platform/otelcol-shop:0.161.0", "10001:10001", []string{"/otelcol-shop"}, nil},
	{"docker.io/library/busybox:1.35", "0:0", nil, []string{"sh"}},
	{"localhost/shop-platform/postgres:15-debian", "70:70", []string{"docker-entrypoint"}, []string{"postgres"}},
}

var localBuild struct {
	once    sync.Once
	dir     string
	in      LocalInputs
	results []LocalResult
	stdout  string
	err     error
}

// localImagesBuilt runs the -local build once (into a temp dir) for every
// test that reads it. The third-party binaries come from SHOP_NODE_BIN,
// SHOP_JAEGER and SHOP_OTELCOL, or (unset) from the repository's scripts,
// which build them once and cache them.
func localImagesBuilt(t *testing.T) (string, []LocalResult) {
	t.Helper()
	localBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "images-local-")
		if err != nil {
			localBuild.err = err
			return
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
		localBuild.dir = dir
		// Cold, the scripts build the node binaries, Jaeger and the collector: up to ~30 minutes on 2 cores.
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
		defer cancel()
		in := LocalInputs{NodeBin: os.Getenv("SHOP_NODE_BIN"), Jaeger: os.Getenv("SHOP_JAEGER"), Otelcol: os.Getenv("SHOP_OTELCOL")}
		if localBuild.in, err = in.Resolve(ctx, testOpts.Root); err != nil {
			localBuild.err = err
			return
		}
		var out bytes.Buffer
		localBuild.results, localBuild.err = RunLocal(ctx, testOpts, localBuild.in, dir, &out)
		localBuild.stdout = out.String()
	})
	if localBuild.err != nil {
		t.Fatalf("go run . -local: %v", localBuild.err)
	}
	return localBuild.dir, localBuild.results
}

// TestLocalImagesList: images.json lists every image of the local cluster
// with its absolute tarball path and the digest the archive holds (skopeo,
// an independent reader, sees the same); the archive names the image as
// containerd will; the last line of the output is the directory.
func TestLocalImagesList(t *testing.T) {
	t.Parallel()
	dir, _ := localImagesBuilt(t)
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is missing: install the Debian package skopeo (make test-images installs it)")
	}
	lines := strings.Split(strings.TrimSpace(localBuild.stdout), "\n")
	if last := lines[len(lines)-1]; last != dir {
		t.Errorf("last output line %q, want the directory %q", last, dir)
	}
	var list []LocalResult
	if err := json.Unmarshal(mustRead(t, filepath.Join(dir, "images.json")), &list); err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, w := range wantLocal {
		want = append(want, w.ref)
	}
	for _, r := range list {
		got = append(got, r.Ref)
		if !filepath.IsAbs(r.Path) || filepath.Dir(r.Path) != dir {
			t.Errorf("%s: path %q is not an absolute path in %s", r.Ref, r.Path, dir)
		}
		ref, err := name.NewTag(r.Ref, name.StrictValidation)
		host, _, _ := strings.Cut(r.Ref, "/")
		if err != nil || !(strings.Contains(host, ".") || host == "localhost") || strings.HasPrefix(r.Ref, "index.docker.io/") {
			t.Errorf("%s is not fully qualified as containerd names images (%v)", r.Ref, err)
			continue
		}
		img := readOCIArchiveTag(t, r.Path, ref.TagStr())
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		skopeoInspect(t, skopeo, r.Path, r.Digest, cf.Config.Labels["org.opencontainers.image.title"])
		if got := containerdName(t, r.Path); got != r.Ref {
			t.Errorf("%s: the archive's io.containerd.image.name is %q", r.Ref, got)
		}
		if d, _ := img.Digest(); d.String() != r.Digest {
			t.Errorf("%s: images.json says %s, the archive holds %s", r.Ref, r.Digest, d)
		}
		if !strings.HasPrefix(r.Digest, "sha256:") {
			t.Errorf("%s: digest %q", r.Ref, r.Digest)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("images.json lists\n%v\nwant\n%v", got, want)
	}
}

// notBuiltLocally are images the operator renders that the local cluster
// does not build (yet), with the reason; localReplacement maps the images
// the operator renders by default to the local images that stand in for
// them (a Shop on the local cluster sets them).
var (
	notBuiltLocally = map[string]string{
		"docker.io/grafana/loki": "not part of the local cluster's image set yet",
	}
	localReplacement = map[string]string{
		"docker.io/library/postgres":                     "localhost/shop-platform/postgres", // postgres:<v>-alpine
		"docker.io/otel/opentelemetry-collector-contrib": "localhost/shop-platform/otelcol-shop",
		"ghcr.io/shopplatform/shopd":                     "ghcr.io/shopplatform/shopd", // the Makefile's VERSION
	}
)

// TestLocalImagesCoverRendered: every image the three sample Shops render
// is built by -local (same name, as the kubelet normalises it), or has a
// local stand-in, or is listed as not built.
func TestLocalImagesCoverRendered(t *testing.T) {
	t.Parallel()
	_, results := localImagesBuilt(t)
	built := map[string]bool{}
	repos := map[string]bool{}
	for _, r := range results {
		ref, _ := name.NewTag(r.Ref) // normalised as the kubelet does (docker.io, library/)
		built[ref.Name()] = true
		repos[ref.Context().Name()] = true
	}
	norm := func(repo string) string {
		r, err := name.NewRepository(repo)
		if err != nil {
			t.Fatal(err)
		}
		return r.Name()
	}
	replacement, skipped := map[string]string{}, map[string]string{}
	for k, v := range localReplacement {
		replacement[norm(k)] = norm(v)
	}
	for k, v := range notBuiltLocally {
		skipped[norm(k)] = v
	}
	seen := map[string]bool{}
	for _, o := range objects(t, renderSamples(t)) {
		for _, c := range append(o.Spec.Template.Spec.Containers, o.Spec.JobTemplate.Spec.Template.Spec.Containers...) {
			if c.Image == "" || seen[c.Image] {
				continue
			}
			seen[c.Image] = true
			ref, err := name.NewTag(c.Image)
			if err != nil {
				t.Errorf("%s/%s: image %q: %v", o.Kind, o.Metadata.Name, c.Image, err)
				continue
			}
			repo := ref.Context().Name()
			switch {
			case built[ref.Name()]:
			case replacement[repo] != "":
				if !repos[replacement[repo]] {
					t.Errorf("%s renders %s; its local stand-in %s is not built", o.Metadata.Name, c.Image, replacement[repo])
				}
			case skipped[repo] != "":
				t.Logf("%s: not built locally: %s", c.Image, skipped[repo])
			default:
				t.Errorf("the operator renders %s (%s/%s); -local does not build it", ref.Name(), o.Kind, o.Metadata.Name)
			}
		}
	}
}

// imageFS is an image's flattened file system.
type imageFS map[string]entry

// resolve follows symbolic links (absolute ones from the image's root)
// and returns the final path, or "" when it leads nowhere in the image.
func (fs imageFS) resolve(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	for hops := 0; hops < 40; hops++ {
		// Resolve the directories first.
		parts := strings.Split(p, "/")
		cur, moved := "", false
		for i, part := range parts {
			next := path.Join(cur, part)
			e, ok := fs[next]
			if !ok {
				return ""
			}
			if e.typ == tar.TypeSymlink {
				target := e.link
				if !path.IsAbs(target) {
					target = path.Join("/", cur, target)
				}
				p = strings.TrimPrefix(path.Join(append([]string{target}, parts[i+1:]...)...), "/")
				moved = true
				break
			}
			cur = next
		}
		if !moved {
			return p
		}
	}
	return ""
}

// lookPath finds a command as the runtime does: absolute, or on PATH.
func (fs imageFS) lookPath(cmd string, env []string) string {
	if strings.Contains(cmd, "/") {
		return fs.resolve(cmd)
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, d := range strings.Split(v, ":") {
				if p := fs.resolve(path.Join(d, cmd)); p != "" && fs[p].typ == tar.TypeReg {
					return p
				}
			}
		}
	}
	return ""
}

// missingLibraries checks every ELF file of the image: its program
// interpreter and each DT_NEEDED library (searched in its RUNPATH/RPATH and
// the loader's default directories) must be in the image.
func (fs imageFS) missingLibraries(t *testing.T) []string {
	t.Helper()
	var missing []string
	dirs := []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib"}
	var names []string
	for p := range fs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		e := fs[p]
		if e.typ != tar.TypeReg || !bytes.HasPrefix(e.data, []byte("\x7fELF")) {
			continue
		}
		f, err := elf.NewFile(bytes.NewReader(e.data))
		if err != nil {
			t.Errorf("/%s: %v", p, err)
			continue
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b := make([]byte, prog.Filesz)
				if _, err := prog.ReadAt(b, 0); err == nil {
					interp := strings.TrimRight(string(b), "\x00")
					if fs.resolve(interp) == "" {
						missing = append(missing, fmt.Sprintf("/%s: interpreter %s", p, interp))
					}
				}
			}
		}
		needed, _ := f.DynString(elf.DT_NEEDED)
		var search []string
		for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
			rp, _ := f.DynString(tag)
			for _, r := range rp {
				for _, d := range strings.Split(r, ":") {
					search = append(search, strings.TrimPrefix(strings.ReplaceAll(d, "$ORIGIN", "/"+path.Dir(p)), "/"))
				}
			}
		}
		search = append(search, dirs...)
		f.Close()
	lib:
		for _, lib := range needed {
			for _, d := range search {
				if r := fs.resolve(path.Join(d, lib)); r != "" && fs[r].typ == tar.TypeReg {
					continue lib
				}
			}
			missing = append(missing, fmt.Sprintf("/%s: %s", p, lib))
		}
	}
	return missing
}

func loadLocal(t *testing.T, ref string) (*v1.ConfigFile, imageFS) {
	t.Helper()
	_, results := localImagesBuilt(t)
	for _, r := range results {
		if r.Ref == ref {
			tag, _ := name.NewTag(ref)
			img := readOCIArchiveTag(t, r.Path, tag.TagStr())
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			return cf, imageFS(extract(t, img))
		}
	}
	t.Fatalf("%s was not built", ref)
	return nil, nil
}

// TestLocalImageConfigs: every local image has its user (numeric, in
// /etc/passwd), its entrypoint (or command) present and executable in the
// layers, the CA bundle, labels saying where it comes from, the build's
// timestamp, and every ELF file's loader and libraries.
func TestLocalImageConfigs(t *testing.T) {
	t.Parallel()
	for _, w := range wantLocal {
		t.Run(w.ref, func(t *testing.T) {
			cf, fs := loadLocal(t, w.ref)
			c := cf.Config
			if c.User != w.user {
				t.Errorf("User = %q, want %q", c.User, w.user)
			}
			if strings.Join(c.Entrypoint, " ") != strings.Join(w.entrypoint, " ") || strings.Join(c.Cmd, " ") != strings.Join(w.cmd, " ") {
				t.Errorf("Entrypoint %q, Cmd %q; want %q, %q", c.Entrypoint, c.Cmd, w.entrypoint, w.cmd)
			}
			argv := append(append([]string(nil), c.Entrypoint...), c.Cmd...)
			exe := fs.lookPath(argv[0], c.Env)
			if exe == "" {
				t.Fatalf("%s is not in the image (PATH from %q)", argv[0], c.Env)
			}
			if e := fs[exe]; e.typ != tar.TypeReg || e.mode&0o111 == 0 {
				t.Errorf("%s (/%s): type %c mode %o: not an executable file", argv[0], exe, e.typ, e.mode)
			}
			uid, _, _ := strings.Cut(c.User, ":")
			if !strings.Contains(string(fs["etc/passwd"].data), ":x:"+uid+":"+uid+":") {
				t.Errorf("/etc/passwd has no user %s:\n%s", uid, fs["etc/passwd"].data)
			}
			if !bytes.Contains(fs["etc/ssl/certs/ca-certificates.crt"].data, []byte("BEGIN CERTIFICATE")) {
				t.Error("no CA bundle")
			}
			for _, l := range []string{"title", "description", "source", "version", "licenses"} {
				if cf.Config.Labels["org.opencontainers.image."+l] == "" {
					t.Errorf("label org.opencontainers.image.%s is empty", l)
				}
			}
			if cf.Created.Unix() != testOpts.Epoch {
				t.Errorf("Created %v, want SOURCE_DATE_EPOCH %d", cf.Created, testOpts.Epoch)
			}
			for _, m := range fs.missingLibraries(t) {
				t.Errorf("missing in the image: %s", m)
			}
			if strings.Contains(w.ref, "/coredns:") {
				// What `setcap cap_net_bind_service=+ep` writes, as upstream's image: port 53 as non-root.
				want := "\x01\x00\x00\x02\x00\x04\x00\x00" + strings.Repeat("\x00", 12)
				if got := fs["coredns"].xattrs["security.capability"]; got != want {
					t.Errorf("/coredns security.capability = %q, want %q", got, want)
				}
			}
		})
	}
}

// TestLocalImagesCached: building the third-party images again into the
// same directory reuses every tarball (same digest, nothing rebuilt); a
// changed input file rebuilds its image.
func TestLocalImagesCached(t *testing.T) {
	t.Parallel()
	dir, results := localImagesBuilt(t)
	first := map[string]string{}
	for _, r := range results {
		first[r.Ref] = r.Digest
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	imgs, err := localImages(ctx, testOpts.Root, testOpts.Arch, localBuild.in, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		res, err := buildLocalImage(img, testOpts, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Cached || res.Digest != first[res.Ref] {
			t.Errorf("%s: cached %t, digest %s (first build %s): want the first build reused", res.Ref, res.Cached, res.Digest, first[res.Ref])
		}
	}
	if !strings.Contains(localBuild.stdout, "built)") {
		t.Errorf("the first build printed no built image:\n%s", localBuild.stdout)
	}

	// A synthetic image whose only input changes.
	src := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho v1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := localImage{Ref: "localhost/shop-platform/cache-test:1", Title: "cache-test", Version: "1", Description: "test", Source: "test", Licenses: "Apache-2.0",
		Accounts: []account{nonrootAccount}, Entrypoint: []string{"/tool"},
		Layers: []localLayer{{CreatedBy: "test", Files: []file{{path: "tool", mode: 0o755, src: src}}}}}
	out := t.TempDir()
	build := func() LocalResult {
		t.Helper()
		res, err := buildLocalImage(img, testOpts, out)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := build(), build()
	if a.Cached || !b.Cached || a.Digest != b.Digest {
		t.Errorf("first build cached=%t, second cached=%t (%s, %s): want built, then reused", a.Cached, b.Cached, a.Digest, b.Digest)
	}
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho v2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if c := build(); c.Cached || c.Digest == a.Digest {
		t.Errorf("after the input changed: cached=%t, digest %s (was %s): want a rebuild", c.Cached, c.Digest, a.Digest)
	}
	// Reproducible: another directory, the same bytes.
	d, err := buildLocalImage(img, testOpts, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c := build(); c.Digest != d.Digest || fileSum(t, c.Path) != fileSum(t, d.Path) {
		t.Errorf("the same inputs in two directories: %s and %s", c.Digest, d.Digest)
	}
}

// TestMissingLibraryFails: the library check of TestLocalImageConfigs does
// fail when a library an ELF file needs is not in the image.
func TestMissingLibraryFails(t *testing.T) {
	t.Parallel()
	_, fs := loadLocal(t, postgresRef)
	lib := fs.resolve("usr/lib/x86_64-linux-gnu/libssl.so.3")
	if lib == "" {
		t.Fatal("the Postgres image has no libssl.so.3")
	}
	if m := fs.missingLibraries(t); len(m) != 0 {
		t.Fatalf("missing before removing anything: %v", m)
	}
	delete(fs, lib)
	m := strings.Join(fs.missingLibraries(t), "\n")
	if !strings.Contains(m, "usr/lib/postgresql/15/bin/postgres: libssl.so.3") {
		t.Errorf("without /%s the check reports:\n%s", lib, m)
	}
}

// containerdName is the io.containerd.image.name annotation of an OCI
// archive's index: the name ctr import gives the image.
func containerdName(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no index.json: %v", archive, err)
		}
		if h.Name == "index.json" {
			var idx v1.IndexManifest
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				t.Fatal(err)
			}
			if len(idx.Manifests) != 1 {
				t.Fatalf("%s: %d manifests in the index", archive, len(idx.Manifests))
			}
			return idx.Manifests[0].Annotations["io.containerd.image.name"]
		}
	}
}
