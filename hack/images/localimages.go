package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// LocalInputs are the prebuilt binaries of the third-party images; an empty
// field is filled by running the repository's script that builds (and
// caches) it.
type LocalInputs struct {
	NodeBin string // hack/node-binaries.sh: coredns, local-path-provisioner, opentelemetry-operator, postgres_exporter, prometheus-operator, prometheus-config-reloader, prometheus, alertmanager, kube-state-metrics, VERSIONS
	Jaeger  string // hack/otelcol/build-jaeger.sh
	Otelcol string // hack/otelcol/build.sh
}

// Resolve runs the build script of every input left empty (each returns
// at once when its output is cached; a build in progress elsewhere is
// waited for by the scripts' flock) and checks the inputs exist.
func (in LocalInputs) Resolve(ctx context.Context, root string) (LocalInputs, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return in, err
	}
	for _, x := range []struct {
		v            *string
		flag, script string
	}{
		{&in.NodeBin, "-node-bin", "hack/node-binaries.sh"},
		{&in.Jaeger, "-jaeger", "hack/otelcol/build-jaeger.sh"},
		{&in.Otelcol, "-otelcol", "hack/otelcol/build.sh"},
	} {
		from := x.flag
		if *x.v == "" {
			from = x.script + "'s output"
			if *x.v, err = lastLine(ctx, filepath.Join(root, x.script)); err != nil {
				return in, err
			}
		}
		if _, err := os.Stat(*x.v); err != nil {
			return in, fmt.Errorf("%s (%s): %w", *x.v, from, err)
		}
	}
	return in, nil
}

// lastLine runs script and returns the last line of its output.
func lastLine(ctx context.Context, script string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = filepath.Dir(script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// goBinary is what a Go binary says about how it was built.
type goBinary struct {
	Path      string // on this machine
	Package   string // main package
	Module    string
	Version   string // the main module's version
	GoVersion string
	Deps      map[string]string // module -> version
}

func readGoBinary(p string) (goBinary, error) {
	bi, err := buildinfo.ReadFile(p)
	if err != nil {
		return goBinary{}, fmt.Errorf("%s: %w", p, err)
	}
	b := goBinary{Path: p, Package: bi.Path, Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion, Deps: map[string]string{}}
	for _, d := range bi.Deps {
		b.Deps[d.Path] = d.Version
	}
	return b, nil
}

// readVersions parses a VERSIONS file: "name version" lines.
func readVersions(p string) (map[string]string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 {
			out[f[0]] = f[1]
		}
	}
	return out, sc.Err()
}

// jaegerImageTags maps the jaeger Go module release to the tag of the
// jaegertracing/jaeger (v2) image released with it: each Jaeger release
// publishes both (v1.74.0 and v2.11.0 are one release).
var jaegerImageTags = map[string]string{
	"v1.74.0": "2.11.0",
}

// debianPackage is an installed Debian package.
type debianPackage struct {
	Name, Version string
}

func dpkgVersion(pkg string) (debianPackage, error) {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil || len(out) == 0 {
		return debianPackage{}, fmt.Errorf("the Debian package %s is not installed (apt-get install %s)", pkg, pkg)
	}
	return debianPackage{Name: pkg, Version: string(out)}, nil
}

// ensureDebianPackage installs pkg with apt-get when probe is missing and
// this runs as root; otherwise a missing probe is an error naming pkg.
func ensureDebianPackage(pkg, probe string) error {
	if _, err := os.Stat(probe); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s is missing: install the Debian package %s (sudo apt-get install -y %s)", probe, pkg, pkg)
	}
	fmt.Fprintf(os.Stderr, "images: %s is missing; apt-get install -y %s\n", probe, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-q", "--no-install-recommends", pkg)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get install %s: %w", pkg, err)
	}
	if _, err := os.Stat(probe); err != nil {
		return fmt.Errorf("apt-get installed %s but %s is still missing", pkg, probe)
	}
	return nil
}

func debianCodename() string {
	b, _ := os.ReadFile("/etc/os-release")
	if m := regexp.MustCompile(`(?m)^VERSION_CODENAME=(\S+)`).FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return "Debian"
}

// prometheusTag is the release of a Prometheus Go module version: the
// module v0.305.0 is Prometheus v3.5.0.
func prometheusTag(v string) string {
	var minor, patch int
	if _, err := fmt.Sscanf(v, "v0.%d.%d", &minor, &patch); err != nil || minor < 300 {
		return v
	}
	return fmt.Sprintf("v%d.%d.%d", minor/100, minor%100, patch)
}

// nobodyAccount is the user of the busybox-based upstream images.
var nobodyAccount = account{Name: "nobody", UID: 65534, Home: "/nonexistent"}

// nonrootAccount is distroless' and ko's non-root user.
var nonrootAccount = account{Name: "nonroot", UID: nonroot, Home: "/home/nonroot"}

// goImage is an image holding one prebuilt Go binary (and, if it is
// dynamically linked, the loader and libraries it needs).
func goImage(img localImage, bin goBinary, at string, xattrs map[string]string) (localImage, error) {
	t := newTree()
	t.add(file{path: at[1:], mode: 0o755, src: bin.Path, xattrs: xattrs})
	if err := t.sharedLibraries([]string{bin.Path}); err != nil {
		return img, err
	}
	img.Layers = []localLayer{{CreatedBy: fmt.Sprintf("hack/images: %s (%s %s, %s)", at, bin.Module, bin.Version, bin.GoVersion), Files: t.list()}}
	return img, nil
}

// builtHere describes a binary that go install built on this machine.
func builtHere(what string, bin goBinary, by string) string {
	return fmt.Sprintf("%s, built on this machine (not pulled): `go install %s@%s` of the Go module %s %s with %s (%s), packaged by shop-operator hack/images",
		what, bin.Package, bin.Version, bin.Module, bin.Version, bin.GoVersion, by)
}

// capNetBindService is the security.capability xattr `setcap
// cap_net_bind_service=+ep` writes (struct vfs_cap_data, revision 2,
// effective; permitted = 1<<CAP_NET_BIND_SERVICE): the CoreDNS image
// upstream sets it so that CoreDNS binds port 53 as a non-root user.
var capNetBindService = string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// localImages describes every third-party image of the local cluster.
// goOut is a directory for the binaries built here (pause, the Postgres
// entrypoint).
func localImages(ctx context.Context, root, arch string, in LocalInputs, goOut string) ([]localImage, error) {
	var imgs []localImage

	// 1. pause, from this module's cmd/pause.
	pause := filepath.Join(goOut, "pause")
	if err := goBuild(Spec{Module: "hack/images", Package: "./cmd/pause"}, Options{Root: root, Arch: arch}, pause); err != nil {
		return nil, err
	}
	imgs = append(imgs, localImage{
		Ref: "localhost/shop-platform/pause:1", Title: "pause", Version: "1",
		Description: "The pod sandbox container of the local cluster's node: waits for SIGTERM or SIGINT (then exits 0) and reaps zombie children as PID 1; " +
			"built from hack/images/cmd/pause of shop-operator (static, CGO_ENABLED=0)",
		Source: "https://github.com/shopplatform/shop-operator/tree/main/hack/images/cmd/pause", Licenses: "Apache-2.0",
		Accounts:   []account{{Name: "pause", UID: 65535, Home: "/"}},
		Entrypoint: []string{"/pause"},
		Layers:     []localLayer{{CreatedBy: "hack/images: go build ./cmd/pause", Files: []file{{path: "pause", mode: 0o755, src: pause}}}},
	})

	// 3-6. The add-ons hack/node-binaries.sh builds with go install.
	versions, err := readVersions(filepath.Join(in.NodeBin, "VERSIONS"))
	if err != nil {
		return nil, fmt.Errorf("node binaries: %w", err)
	}
	addons := []struct {
		bin, versionKey, module, repo string
		img                           localImage
		at                            string
		xattrs                        map[string]string
		tag                           func(v string) string
	}{
		{bin: "coredns", versionKey: "coredns", module: "github.com/coredns/coredns", repo: "registry.k8s.io/coredns/coredns",
			at: "/coredns", xattrs: map[string]string{"security.capability": capNetBindService},
			img: localImage{Title: "coredns", Source: "https://github.com/coredns/coredns", Licenses: "Apache-2.0",
				Accounts: []account{nonrootAccount}, Entrypoint: []string{"/coredns"}, Ports: []string{"53/tcp", "53/udp"}}},
		{bin: "local-path-provisioner", versionKey: "local-path-provisioner", module: "github.com/rancher/local-path-provisioner", repo: "docker.io/rancher/local-path-provisioner",
			at:  "/usr/bin/local-path-provisioner",
			img: localImage{Title: "local-path-provisioner", Source: "https://github.com/rancher/local-path-provisioner", Licenses: "Apache-2.0", Root: true, Entrypoint: []string{"local-path-provisioner"}}},
		{bin: "opentelemetry-operator", versionKey: "opentelemetry-operator", module: "github.com/open-telemetry/opentelemetry-operator", repo: "ghcr.io/open-telemetry/opentelemetry-operator/opentelemetry-operator",
			at: "/manager", tag: func(v string) string { return strings.TrimPrefix(v, "v") },
			img: localImage{Title: "opentelemetry-operator", Source: "https://github.com/open-telemetry/opentelemetry-operator", Licenses: "Apache-2.0",
				Accounts: []account{nonrootAccount}, Entrypoint: []string{"/manager"}}},
		{bin: "postgres_exporter", versionKey: "postgres_exporter", module: "github.com/prometheus-community/postgres_exporter", repo: "quay.io/prometheuscommunity/postgres-exporter",
			at: "/bin/postgres_exporter",
			img: localImage{Title: "postgres_exporter", Source: "https://github.com/prometheus-community/postgres_exporter", Licenses: "Apache-2.0",
				Accounts: []account{{Name: "nobody", UID: 65534, Home: "/nonexistent"}}, Entrypoint: []string{"/bin/postgres_exporter"}, Ports: []string{"9187/tcp"}}},
		{bin: "prometheus-operator", versionKey: "prometheus-operator", module: "github.com/prometheus-operator/prometheus-operator", repo: "quay.io/prometheus-operator/prometheus-operator",
			at: "/bin/operator",
			img: localImage{Title: "prometheus-operator", Source: "https://github.com/prometheus-operator/prometheus-operator", Licenses: "Apache-2.0",
				Accounts: []account{nobodyAccount}, Entrypoint: []string{"/bin/operator"}, Ports: []string{"8080/tcp"}}},
		{bin: "prometheus-config-reloader", versionKey: "prometheus-config-reloader", module: "github.com/prometheus-operator/prometheus-operator", repo: "quay.io/prometheus-operator/prometheus-config-reloader",
			at: "/bin/prometheus-config-reloader",
			img: localImage{Title: "prometheus-config-reloader", Source: "https://github.com/prometheus-operator/prometheus-operator", Licenses: "Apache-2.0",
				Accounts: []account{nobodyAccount}, Entrypoint: []string{"/bin/prometheus-config-reloader"}}},
		// Built from the Go module (Debian's prometheus has no Kubernetes
		// service discovery); without the web UI, whose assets the module lacks.
		{bin: "prometheus", versionKey: "prometheus", module: "github.com/prometheus/prometheus", repo: "quay.io/prometheus/prometheus",
			at: "/bin/prometheus", tag: prometheusTag,
			img: localImage{Title: "prometheus", Source: "https://github.com/prometheus/prometheus", Licenses: "Apache-2.0",
				Accounts: []account{nobodyAccount}, Entrypoint: []string{"/bin/prometheus"}, WorkingDir: "/prometheus", Ports: []string{"9090/tcp"}}},
		{bin: "alertmanager", versionKey: "alertmanager", module: "github.com/prometheus/alertmanager", repo: "quay.io/prometheus/alertmanager",
			at: "/bin/alertmanager",
			img: localImage{Title: "alertmanager", Source: "https://github.com/prometheus/alertmanager", Licenses: "Apache-2.0",
				Accounts: []account{nobodyAccount}, Entrypoint: []string{"/bin/alertmanager"}, WorkingDir: "/alertmanager", Ports: []string{"9093/tcp"}}},
		{bin: "kube-state-metrics", versionKey: "kube-state-metrics", module: "k8s.io/kube-state-metrics/v2", repo: "registry.k8s.io/kube-state-metrics/kube-state-metrics",
			at: "/kube-state-metrics",
			img: localImage{Title: "kube-state-metrics", Source: "https://github.com/kubernetes/kube-state-metrics", Licenses: "Apache-2.0",
				Accounts: []account{nobodyAccount}, Entrypoint: []string{"/kube-state-metrics"}, Ports: []string{"8080/tcp", "8081/tcp"}}},
	}
	for _, a := range addons {
		bin, err := readGoBinary(filepath.Join(in.NodeBin, a.bin))
		if err != nil {
			return nil, err
		}
		want := "v" + versions[a.versionKey]
		if bin.Module != a.module || bin.Version != want {
			return nil, fmt.Errorf("%s: built from %s %s, VERSIONS says %s %s", bin.Path, bin.Module, bin.Version, a.module, want)
		}
		tag := bin.Version
		if a.tag != nil {
			tag = a.tag(tag)
		}
		img := a.img
		img.Ref, img.Version = a.repo+":"+tag, tag
		img.Description = builtHere(a.img.Title+" "+bin.Version, bin, "hack/node-binaries.sh")
		if img, err = goImage(img, bin, a.at, a.xattrs); err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}

	// 7. Jaeger v2: the module release v1.x.0 is the image release 2.y.0.
	jaeger, err := readGoBinary(in.Jaeger)
	if err != nil {
		return nil, err
	}
	jv := jaeger.Deps["github.com/jaegertracing/jaeger"]
	if jaeger.Module == "github.com/jaegertracing/jaeger" {
		jv = jaeger.Version
	}
	jtag, ok := jaegerImageTags[jv]
	if !ok {
		return nil, fmt.Errorf("%s: the jaeger module %q has no known image tag: add it to jaegerImageTags", in.Jaeger, jv)
	}
	jimg := localImage{
		Ref: "docker.io/jaegertracing/jaeger:" + jtag, Title: "jaeger", Version: jtag,
		Description: fmt.Sprintf("Jaeger %s (the Go module github.com/jaegertracing/jaeger %s, package %s), built on this machine (not pulled) with %s by hack/otelcol/build-jaeger.sh, packaged by shop-operator hack/images",
			jtag, jv, jaeger.Package, jaeger.GoVersion),
		Source: "https://github.com/jaegertracing/jaeger", Licenses: "Apache-2.0",
		Accounts:   []account{{Name: "jaeger", UID: 10001, Home: "/"}},
		Entrypoint: []string{"/jaeger"},
		Ports:      []string{"4317/tcp", "4318/tcp", "5778/tcp", "9411/tcp", "13133/tcp", "16686/tcp"},
	}
	jaeger.Module, jaeger.Version = "github.com/jaegertracing/jaeger", jv
	if jimg, err = goImage(jimg, jaeger, "/jaeger", nil); err != nil {
		return nil, err
	}
	imgs = append(imgs, jimg)

	// 8. The Shop's collector distribution (hack/otelcol/builder-config.yaml).
	otelcol, err := readGoBinary(in.Otelcol)
	if err != nil {
		return nil, err
	}
	ov, err := otelcolVersion(ctx, in.Otelcol)
	if err != nil {
		return nil, err
	}
	oimg := localImage{
		Ref: "localhost/shop-platform/otelcol-shop:" + ov, Title: "otelcol-shop", Version: ov,
		Description: fmt.Sprintf("otelcol-shop %s: the OpenTelemetry Collector distribution of hack/otelcol/builder-config.yaml (the components the operator renders, collector %s; not contrib), "+
			"built on this machine with the collector builder and %s by hack/otelcol/build.sh, packaged by shop-operator hack/images", ov, otelcol.Deps["go.opentelemetry.io/collector/otelcol"], otelcol.GoVersion),
		Source: "https://github.com/shopplatform/shop-operator/tree/main/hack/otelcol", Licenses: "Apache-2.0",
		Accounts:   []account{{Name: "otel", UID: 10001, Home: "/"}},
		Entrypoint: []string{"/otelcol-shop"},
		Ports:      []string{"4317/tcp", "4318/tcp"},
	}
	otelcol.Module, otelcol.Version = "otelcol-shop", ov
	if oimg, err = goImage(oimg, otelcol, "/otelcol-shop", nil); err != nil {
		return nil, err
	}
	imgs = append(imgs, oimg)

	// 9-10. From Debian's packages.
	if err := ensureDebianPackage("busybox-static", "/bin/busybox"); err != nil {
		return nil, err
	}
	bb, err := busyboxFiles(ctx)
	if err != nil {
		return nil, err
	}
	bbPkg, err := dpkgVersion("busybox-static")
	if err != nil {
		return nil, err
	}
	imgs = append(imgs, localImage{
		Ref: "docker.io/library/busybox:1.35", Title: "busybox", Version: "1.35",
		Description: fmt.Sprintf("BusyBox from Debian %s's package busybox-static %s (/bin/busybox and a symlink per applet in /bin), packaged by shop-operator hack/images",
			debianCodename(), bbPkg.Version),
		Source: "https://tracker.debian.org/pkg/busybox", Licenses: "GPL-2.0-only",
		Root: true, Accounts: []account{{Name: "nobody", UID: 65534, Home: "/nonexistent"}},
		Cmd:    []string{"sh"},
		Layers: []localLayer{{CreatedBy: "hack/images: busybox-static " + bbPkg.Version, Files: bb}},
	})

	pg, err := postgresImage(ctx, root, arch, goOut, bb)
	if err != nil {
		return nil, fmt.Errorf("postgres image: %w", err)
	}
	imgs = append(imgs, pg)
	return imgs, nil
}

// otelcolVersion asks the collector for its version ("otelcol-shop version 0.161.0").
func otelcolVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 || f[1] != "version" {
		return "", fmt.Errorf("%s --version printed %q", bin, out)
	}
	return f[2], nil
}

// busyboxFiles is /bin/busybox with a symlink per applet in /bin.
func busyboxFiles(ctx context.Context) ([]file, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/bin/busybox", "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	t := newTree()
	t.add(file{path: "bin/", mode: 0o755, dir: true})
	t.add(file{path: "bin/busybox", mode: 0o755, src: "/bin/busybox"})
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		t.add(file{path: "bin/" + a, mode: 0o777, link: "busybox"})
	}
	if err := t.sharedLibraries([]string{"/bin/busybox"}); err != nil {
		return nil, err
	}
	return t.list(), nil
}

// writeImagesJSON writes the list of built images, atomically.
func writeImagesJSON(p string, results []LocalResult) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(p+".tmp", append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// RunLocal builds every image the local cluster needs into out: the
// operator and shopd (always rebuilt), and the third-party images (rebuilt
// only when their inputs change), writes out/images.json and prints out on
// its last line.
func RunLocal(ctx context.Context, opts Options, in LocalInputs, out string, stdout io.Writer) ([]LocalResult, error) {
	out, err := filepath.Abs(out)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	if in, err = in.Resolve(ctx, opts.Root); err != nil {
		return nil, err
	}
	var results []LocalResult
	for _, spec := range Specs() {
		res, err := BuildTarball(spec, opts, out)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Name, err)
		}
		fmt.Fprintf(stdout, "%s %s %s (%d bytes, built)\n", res.Ref, res.Digest, res.Path, res.Size)
		results = append(results, LocalResult{Ref: res.Ref.Name(), Path: res.Path, Digest: res.Digest.String(), Size: res.Size})
	}
	goOut, err := os.MkdirTemp(out, ".go-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(goOut)
	imgs, err := localImages(ctx, opts.Root, opts.Arch, in, goOut)
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		res, err := buildLocalImage(img, opts, out)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", img.Ref, err)
		}
		how := "built"
		if res.Cached {
			how = "cached"
		}
		fmt.Fprintf(stdout, "%s %s %s (%d bytes, %s)\n", res.Ref, res.Digest, res.Path, res.Size, how)
		results = append(results, res)
	}
	if err := writeImagesJSON(filepath.Join(out, "images.json"), results); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "images: %d images in %s (%.0fs)\n", len(results), out, time.Since(start).Seconds())
	fmt.Fprintln(stdout, out)
	return results, nil
}
