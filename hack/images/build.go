package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UID and GID of the non-root user, as in distroless ("nonroot") and ko.
const nonroot = 65532

// caBundle is copied from the build machine into every image, so TLS to the
// API server, exporters and registries works on an empty base.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// Spec describes one image: which main package to build from which module.
type Spec struct {
	Name        string // image name, also the tarball's prefix
	Title       string // org.opencontainers.image.title
	Description string
	Module      string // module directory, relative to the repository root
	Package     string // main package, relative to Module
	Binary      string // path of the binary in the image, also the entrypoint
	VersionVar  string // -X target that receives the version
}

// Specs lists the images this repository ships.
func Specs() []Spec {
	return []Spec{
		{
			Name: "shop-operator", Title: "shop-operator",
			Description: "Kubernetes operator of the Shop platform",
			Module:      ".", Package: "./cmd/manager", Binary: "/manager",
			VersionVar: "github.com/shopplatform/shop-operator/internal/version.Version",
		},
		{
			Name: "shopd", Title: "shopd",
			Description: "Commerce services of the Shop platform: shopd auth|catalog|orders|payment|frontend",
			Module:      "services", Package: "./cmd/shopd", Binary: "/shopd",
			VersionVar: "github.com/shopplatform/shop-operator/services/internal/platform.Version",
		},
	}
}

// Options are the inputs every image shares. Equal options and sources give
// equal digests.
type Options struct {
	Root     string // repository root
	Version  string
	Revision string
	Arch     string
	Epoch    int64 // SOURCE_DATE_EPOCH: every timestamp in the image
	Registry string
}

// Result is what BuildTarball wrote.
type Result struct {
	Ref    name.Tag
	Digest v1.Hash
	Path   string
	Size   int64
}

// BuildTarball builds spec's image and writes it as an OCI image layout in a
// tar, <out>/<name>-<version>.tar ("docker load" since Docker 25, "podman load",
// "skopeo copy oci-archive:", or untar and "crane push <dir>"), with the
// manifest digest beside it in <name>-<version>.digest. The OCI layout keeps the
// manifest as built, so the digest is the one a registry will report.
func BuildTarball(spec Spec, opts Options, out string) (Result, error) {
	ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", opts.Registry, spec.Name, opts.Version))
	if err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return Result{}, err
	}
	bin := filepath.Join(out, spec.Name+".bin")
	defer os.Remove(bin)
	if err := goBuild(spec, opts, bin); err != nil {
		return Result{}, err
	}
	img, err := Image(spec, opts, bin)
	if err != nil {
		return Result{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return Result{}, err
	}
	path := filepath.Join(out, fmt.Sprintf("%s-%s.tar", spec.Name, opts.Version))
	if err := writeOCIArchive(path, ref.TagStr(), ref.Name(), img); err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(filepath.Join(out, fmt.Sprintf("%s-%s.digest", spec.Name, opts.Version)), []byte(digest.String()+"\n"), 0o644); err != nil {
		return Result{}, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return Result{}, err
	}
	return Result{Ref: ref, Digest: digest, Path: path, Size: st.Size()}, nil
}

// goBuild links a static, reproducible binary: no cgo, paths trimmed, no
// build id or VCS stamp (the revision is a label instead).
func goBuild(spec Spec, opts Options, out string) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	ldflags := "-s -w -buildid="
	if spec.VersionVar != "" {
		ldflags += fmt.Sprintf(" -X %s=%s", spec.VersionVar, opts.Version)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, spec.Package)
	cmd.Dir = filepath.Join(opts.Root, spec.Module)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+opts.Arch, "GOFLAGS=-mod=readonly")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", spec.Package, err)
	}
	return nil
}

// Image assembles the image from a built binary: a base layer (passwd, group,
// CA bundle, /tmp) and an application layer (the binary), OCI media types.
func Image(spec Spec, opts Options, binary string) (v1.Image, error) {
	created := time.Unix(opts.Epoch, 0).UTC()
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	exe, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	base, err := layer(created, []file{
		{path: "etc/", mode: 0o755, dir: true},
		{path: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonroot))},
		{path: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf(
			"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonroot, nonroot))},
		{path: "etc/ssl/", mode: 0o755, dir: true},
		{path: "etc/ssl/certs/", mode: 0o755, dir: true},
		{path: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{path: "home/", mode: 0o755, dir: true},
		{path: "home/nonroot/", mode: 0o700, dir: true, owner: nonroot},
		{path: "tmp/", mode: 0o1777, dir: true},
	})
	if err != nil {
		return nil, err
	}
	app, err := layer(created, []file{{path: spec.Binary[1:], mode: 0o755, data: exe}})
	if err != nil {
		return nil, err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "hack/images: passwd, group, CA certificates", Comment: "base"}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "hack/images: go build " + spec.Package}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.OS, cf.Architecture = "linux", opts.Arch
	cf.Author = "hack/images"
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", nonroot, nonroot),
		Entrypoint: []string{spec.Binary},
		WorkingDir: "/",
		Env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"SSL_CERT_FILE=" + caBundle,
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":       spec.Title,
			"org.opencontainers.image.description": spec.Description,
			"org.opencontainers.image.version":     opts.Version,
			"org.opencontainers.image.source":      "https://github.com/shopplatform/shop-operator",
			"org.opencontainers.image.revision":    opts.Revision,
			"org.opencontainers.image.licenses":    "Apache-2.0",
			"org.opencontainers.image.created":     created.Format(time.RFC3339),
		},
	}
	return mutate.ConfigFile(img, cf)
}

// writeOCIArchive writes img as an OCI image layout, tagged tag and named
// imageName (registry/repository:tag as containerd and the kubelet spell
// it), and tars the layout reproducibly.
func writeOCIArchive(path, tag, imageName string, img v1.Image) error {
	dir, err := os.MkdirTemp("", "oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag,
		"io.containerd.image.name":          imageName, // docker load and ctr import name the image after this
	})); err != nil {
		return err
	}
	var files []file
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			files = append(files, file{path: rel + "/", mode: 0o755, dir: true})
			return nil
		}
		files = append(files, file{path: rel, mode: 0o644, src: p})
		return nil
	})
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeTar(f, time.Unix(0, 0), files); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type file struct {
	path   string
	mode   int64
	data   []byte
	src    string // a host file to stream the content from, instead of data
	link   string // the target of a symbolic link
	dir    bool
	owner  int
	xattrs map[string]string // extended attributes (PAX SCHILY.xattr.*), e.g. file capabilities
}

// layer writes files as one tar layer in path order with fixed owners and
// times, so its bytes (and digest) depend only on the contents.
func layer(created time.Time, files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := writeTar(&buf, created, files); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// writeTar writes files sorted by path, with one time and fixed owners.
func writeTar(w io.Writer, created time.Time, files []file) error {
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := &tar.Header{
			Name: f.path, Mode: f.mode, ModTime: created, Uid: f.owner, Gid: f.owner,
			Typeflag: tar.TypeReg, Size: int64(len(f.data)), Format: tar.FormatPAX,
		}
		var src *os.File
		switch {
		case f.dir:
			h.Typeflag, h.Size = tar.TypeDir, 0
		case f.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.link, 0
		case f.src != "":
			var err error
			if src, err = os.Open(f.src); err != nil {
				return err
			}
			st, err := src.Stat()
			if err != nil {
				src.Close()
				return err
			}
			h.Size = st.Size()
		}
		for k, v := range f.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			if src != nil {
				src.Close()
			}
			return err
		}
		if src != nil {
			n, err := io.Copy(tw, src)
			src.Close()
			if err != nil {
				return err
			}
			if n != h.Size {
				return fmt.Errorf("%s changed while it was read", f.src)
			}
			continue
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}
