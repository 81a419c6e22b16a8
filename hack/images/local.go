package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// recipe is part of every local image's cache key: bump it when the way
// images are assembled changes (layout, config, compression), so cached
// tarballs built the old way are rebuilt.
const recipe = "local-images/1"

// localImage is one image of the local cluster that is not built from this
// repository's Go code by Specs/BuildTarball: its files come from binaries
// and Debian packages on this machine.
type localImage struct {
	Ref         string // fully qualified, as containerd names it: docker.io/library/busybox:1.35
	Title       string
	Description string // how it was built, from which upstream module or package and version
	Source      string // upstream source (org.opencontainers.image.source)
	Licenses    string
	Version     string

	Accounts   []account // passwd and group entries besides root; the first is the image's user
	Root       bool      // the image runs as root (User 0:0)
	Entrypoint []string
	Cmd        []string
	Env        []string // besides PATH (see Path) and SSL_CERT_FILE
	Path       string   // PATH; default defaultPath
	WorkingDir string
	Ports      []string // exposed, e.g. 9187/tcp
	StopSignal string
	Layers     []localLayer // above the base layer (passwd, group, CA bundle, /tmp)
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type account struct {
	Name  string
	UID   int
	Home  string // created in the base layer, owned by the account, unless "/"
	Shell string
}

type localLayer struct {
	CreatedBy string
	Files     []file
}

// LocalResult is one entry of images.json.
type LocalResult struct {
	Ref    string `json:"ref"`
	Path   string `json:"path"`
	Digest string `json:"digest"`

	Cached bool  `json:"-"`
	Size   int64 `json:"-"`
}

// fileName is the tarball's name without extension: the repository's last
// element and the tag, e.g. coredns-v1.15.0.
func fileName(ref name.Tag) string {
	return path.Base(ref.RepositoryStr()) + "-" + ref.TagStr()
}

// buildLocalImage writes img as <out>/<name>-<tag>.tar with its digest in
// .digest and its cache key in .key, unless the key file already holds the
// key of these inputs (every file's path, mode, owner and content hash, the
// config, the recipe): then the tarball is reused.
func buildLocalImage(img localImage, opts Options, out string) (LocalResult, error) {
	ref, err := name.NewTag(img.Ref)
	if err != nil {
		return LocalResult{}, err
	}
	base := filepath.Join(out, fileName(ref))
	tarPath, digestPath, keyPath := base+".tar", base+".digest", base+".key"
	created := time.Unix(opts.Epoch, 0).UTC()

	baseLayer, err := baseFiles(img)
	if err != nil {
		return LocalResult{}, err
	}
	layers := append([]localLayer{{CreatedBy: "hack/images: passwd, group, CA certificates", Files: baseLayer}}, img.Layers...)
	cf := localConfig(img, opts, created)
	key, err := cacheKey(cf, layers, img.Ref)
	if err != nil {
		return LocalResult{}, err
	}
	if old, err := os.ReadFile(keyPath); err == nil && strings.TrimSpace(string(old)) == key {
		d, derr := os.ReadFile(digestPath)
		st, serr := os.Stat(tarPath)
		if derr == nil && serr == nil {
			abs, _ := filepath.Abs(tarPath)
			return LocalResult{Ref: img.Ref, Path: abs, Digest: strings.TrimSpace(string(d)), Cached: true, Size: st.Size()}, nil
		}
	}
	os.Remove(keyPath) // an interrupted build below leaves no stale key

	tmp, err := os.MkdirTemp(out, ".build-")
	if err != nil {
		return LocalResult{}, err
	}
	defer os.RemoveAll(tmp)
	image := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	image = mutate.ConfigMediaType(image, types.OCIConfigJSON)
	for i, l := range layers {
		layer, err := gzipLayer(filepath.Join(tmp, fmt.Sprintf("layer-%d.tar.gz", i)), created, l.Files)
		if err != nil {
			return LocalResult{}, fmt.Errorf("layer %q: %w", l.CreatedBy, err)
		}
		image, err = mutate.Append(image, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
			History: v1.History{Created: v1.Time{Time: created}, CreatedBy: l.CreatedBy}})
		if err != nil {
			return LocalResult{}, err
		}
	}
	base0, err := image.ConfigFile()
	if err != nil {
		return LocalResult{}, err
	}
	cf.RootFS, cf.History = base0.RootFS, base0.History
	image, err = mutate.ConfigFile(image, cf)
	if err != nil {
		return LocalResult{}, err
	}
	digest, err := image.Digest()
	if err != nil {
		return LocalResult{}, err
	}
	if err := writeOCIArchive(tarPath+".tmp", ref.TagStr(), img.Ref, image); err != nil {
		return LocalResult{}, err
	}
	if err := os.Rename(tarPath+".tmp", tarPath); err != nil {
		return LocalResult{}, err
	}
	if err := os.WriteFile(digestPath, []byte(digest.String()+"\n"), 0o644); err != nil {
		return LocalResult{}, err
	}
	if err := os.WriteFile(keyPath, []byte(key+"\n"), 0o644); err != nil {
		return LocalResult{}, err
	}
	st, err := os.Stat(tarPath)
	if err != nil {
		return LocalResult{}, err
	}
	abs, _ := filepath.Abs(tarPath)
	return LocalResult{Ref: img.Ref, Path: abs, Digest: digest.String(), Size: st.Size()}, nil
}

// localConfig is the image config without the layers.
func localConfig(img localImage, opts Options, created time.Time) *v1.ConfigFile {
	user := "0:0"
	if !img.Root {
		user = fmt.Sprintf("%d:%d", img.Accounts[0].UID, img.Accounts[0].UID)
	}
	p := img.Path
	if p == "" {
		p = defaultPath
	}
	wd := img.WorkingDir
	if wd == "" {
		wd = "/"
	}
	cfg := v1.Config{
		User:       user,
		Entrypoint: img.Entrypoint,
		Cmd:        img.Cmd,
		WorkingDir: wd,
		Env:        append([]string{"PATH=" + p, "SSL_CERT_FILE=" + caBundle}, img.Env...),
		StopSignal: img.StopSignal,
		Labels: map[string]string{
			"org.opencontainers.image.title":       img.Title,
			"org.opencontainers.image.description": img.Description,
			"org.opencontainers.image.version":     img.Version,
			"org.opencontainers.image.source":      img.Source,
			"org.opencontainers.image.licenses":    img.Licenses,
			"org.opencontainers.image.created":     created.Format(time.RFC3339),
			"org.opencontainers.image.vendor":      "built locally by shop-operator hack/images",
		},
	}
	if len(img.Ports) > 0 {
		cfg.ExposedPorts = map[string]struct{}{}
		for _, p := range img.Ports {
			cfg.ExposedPorts[p] = struct{}{}
		}
	}
	return &v1.ConfigFile{
		Created:      v1.Time{Time: created},
		Author:       "hack/images",
		OS:           "linux",
		Architecture: opts.Arch,
		Config:       cfg,
	}
}

// baseFiles: passwd and group with root and the image's accounts, their
// homes, the CA bundle and /tmp.
func baseFiles(img localImage) ([]file, error) {
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n"
	group := "root:x:0:\n"
	files := []file{
		{path: "etc/", mode: 0o755, dir: true},
		{path: "etc/ssl/", mode: 0o755, dir: true},
		{path: "etc/ssl/certs/", mode: 0o755, dir: true},
		{path: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{path: "tmp/", mode: 0o1777, dir: true},
	}
	seen := map[string]bool{}
	for _, a := range img.Accounts {
		shell := a.Shell
		if shell == "" {
			shell = "/sbin/nologin"
		}
		passwd += fmt.Sprintf("%s:x:%d:%d:%s:%s:%s\n", a.Name, a.UID, a.UID, a.Name, a.Home, shell)
		group += fmt.Sprintf("%s:x:%d:\n", a.Name, a.UID)
		if a.Home == "/" || a.Home == "" || strings.HasPrefix(a.Home, "/nonexistent") {
			continue
		}
		for _, d := range parents(a.Home[1:]) {
			if !seen[d] {
				seen[d] = true
				files = append(files, file{path: d + "/", mode: 0o755, dir: true})
			}
		}
		files = append(files, file{path: a.Home[1:] + "/", mode: 0o700, dir: true, owner: a.UID})
	}
	if img.Root {
		files = append(files, file{path: "root/", mode: 0o700, dir: true})
	}
	files = append(files,
		file{path: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		file{path: "etc/group", mode: 0o644, data: []byte(group)},
		// glibc's defaults, written down for dynamically linked programs.
		file{path: "etc/nsswitch.conf", mode: 0o644, data: []byte("passwd: files\ngroup: files\nhosts: files dns\n")},
	)
	return files, nil
}

// parents returns the parent directories of p (relative, slash-separated),
// outermost first, without p.
func parents(p string) []string {
	var out []string
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

// cacheKey hashes everything an image's bytes depend on.
func cacheKey(cf *v1.ConfigFile, layers []localLayer, ref string) (string, error) {
	h := sha256.New()
	cfg, err := json.Marshal(cf)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "%s\n%s\n%s\n", recipe, ref, cfg)
	for _, l := range layers {
		fmt.Fprintf(h, "layer %q\n", l.CreatedBy)
		files := append([]file(nil), l.Files...)
		sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
		for _, f := range files {
			sum := sha256.Sum256(f.data)
			content := hex.EncodeToString(sum[:])
			if f.src != "" {
				if content, err = fileHash(f.src); err != nil {
					return "", err
				}
			}
			x, _ := json.Marshal(f.xattrs)
			fmt.Fprintf(h, "%q %o %d %t %q %s %s\n", f.path, f.mode, f.owner, f.dir, f.link, x, content)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileHash(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// gzipLayer writes files as a reproducible tar, gzip-compressed once, to
// path; the layer reads it from there (its digest is the file's).
func gzipLayer(p string, created time.Time, files []file) (v1.Layer, error) {
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := writeTar(zw, created, files); err != nil {
		f.Close()
		return nil, err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(p) }, tarball.WithMediaType(types.OCILayer))
}
