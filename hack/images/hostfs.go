package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// tree collects files of the build machine for one image layer, at the
// paths they have on the machine: symbolic links stay links (a symlinked
// directory such as Debian's /lib -> usr/lib becomes the same link in the
// image), directories are created with their parents.
type tree struct {
	files map[string]file // by path in the image, without a leading slash
}

func newTree() *tree { return &tree{files: map[string]file{}} }

// list returns the files sorted by path.
func (t *tree) list() []file {
	out := make([]file, 0, len(t.files))
	for _, f := range t.files {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// add puts f into the tree, with its parent directories (0755, root).
func (t *tree) add(f file) {
	p := strings.TrimSuffix(f.path, "/")
	for _, d := range parents(p) {
		if _, ok := t.files[d]; !ok {
			if _, ok := t.files[d+"/"]; !ok {
				t.files[d+"/"] = file{path: d + "/", mode: 0o755, dir: true}
			}
		}
	}
	if f.dir {
		f.path = p + "/"
	}
	t.files[f.path] = f
}

// has reports whether p (image path, no leading slash) is in the tree.
func (t *tree) has(p string) bool {
	_, a := t.files[p]
	_, b := t.files[p+"/"]
	return a || b
}

// hostPath adds the host file p (absolute) at the same path: every
// symlinked directory on the way is added as the same link, a symlinked
// file as the link and (recursively) its target.
func (t *tree) hostPath(p string) error {
	return t.hostPathDepth(p, 0)
}

func (t *tree) hostPathDepth(p string, depth int) error {
	if depth > 40 {
		return fmt.Errorf("%s: too many symbolic links", p)
	}
	p = filepath.Clean(p)
	// Resolve the directories one component at a time.
	dir := "/"
	for _, c := range strings.Split(strings.Trim(filepath.Dir(p), "/"), "/") {
		if c == "" {
			continue
		}
		next := filepath.Join(dir, c)
		st, err := os.Lstat(next)
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			if !t.has(next[1:]) {
				t.add(file{path: next[1:], mode: 0o777, link: target})
			}
			resolved := target
			if !filepath.IsAbs(target) {
				resolved = filepath.Join(dir, target)
			}
			rest, _ := filepath.Rel(next, p)
			return t.hostPathDepth(filepath.Join(resolved, rest), depth+1)
		}
		dir = next
	}
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		t.add(file{path: p[1:], mode: 0o777, link: target})
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		return t.hostPathDepth(target, depth+1)
	case st.IsDir():
		t.add(file{path: p[1:], mode: int64(st.Mode().Perm()), dir: true})
	case st.Mode().IsRegular():
		t.add(file{path: p[1:], mode: int64(st.Mode().Perm()), src: p})
	default:
		return fmt.Errorf("%s: not a regular file, directory or symbolic link", p)
	}
	return nil
}

// hostDir adds the directory root with everything under it, except paths
// for which skip (given the host path) returns true.
func (t *tree) hostDir(root string, skip func(p string) bool) error {
	if err := t.hostPath(root); err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		if skip != nil && skip(p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			t.add(file{path: p[1:], mode: 0o777, link: target})
		case info.IsDir():
			t.add(file{path: p[1:], mode: int64(info.Mode().Perm()), dir: true})
		case info.Mode().IsRegular():
			t.add(file{path: p[1:], mode: int64(info.Mode().Perm()), src: p})
		}
		return nil
	})
}

// isDynamicELF reports whether p is an ELF file that needs the dynamic
// loader or shared libraries.
func isDynamicELF(p string) (bool, error) {
	f, err := elf.Open(p)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return false, nil // not ELF
		}
		return false, err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return true, nil
		}
	}
	libs, _ := f.ImportedLibraries()
	return len(libs) > 0, nil
}

// sharedLibraries adds, for every dynamically linked ELF among the host
// files bins, the dynamic loader and every shared library ldd resolves
// (at their host paths, with the symlinks that lead there).
func (t *tree) sharedLibraries(bins []string) error {
	var dynamic []string
	for _, b := range bins {
		dyn, err := isDynamicELF(b)
		if err != nil {
			return err
		}
		if dyn {
			dynamic = append(dynamic, b)
		}
	}
	if len(dynamic) == 0 {
		return nil
	}
	libs, err := ldd(dynamic)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := t.hostPath(l); err != nil {
			return fmt.Errorf("%s: %w", l, err)
		}
	}
	return nil
}

// ldd lists the paths of the loader and the libraries the host ELF files
// need, transitively (one ldd for all of them), sorted.
func ldd(files []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ldd", files...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ldd: %v: %s", err, stderr.String())
	}
	seen := map[string]bool{}
	of := files[0]
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if len(files) > 1 && !strings.HasPrefix(raw, "\t") && strings.HasSuffix(line, ":") {
			of = strings.TrimSuffix(line, ":") // the next file's section
			continue
		}
		if line == "" || strings.Contains(line, "statically linked") {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("%s: ldd: %s", of, line)
		}
		var lib string
		if _, after, ok := strings.Cut(line, "=>"); ok {
			lib = strings.Fields(after)[0]
		} else {
			lib = strings.Fields(line)[0]
		}
		if path.IsAbs(lib) { // not linux-vdso.so.1, the kernel's
			seen[lib] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	libs := make([]string, 0, len(seen))
	for l := range seen {
		libs = append(libs, l)
	}
	sort.Strings(libs)
	return libs, nil
}
