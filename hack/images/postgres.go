package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The Postgres image of the local cluster: Debian's postgresql-15 (the
// machine's own, the one the operator's tests run), laid out so that the
// StatefulSet the operator renders for the official postgres:<v>-alpine
// image runs it unchanged: user and group 70, PGDATA under
// /var/lib/postgresql/data, the socket in /var/run/postgresql, the
// docker-entrypoint contract (hack/images/cmd/pg-entrypoint) and busybox as
// /bin for the backup CronJob's script.
const (
	pgMajor   = "15"
	pgPackage = "postgresql-" + pgMajor
	pgLib     = "/usr/lib/postgresql/" + pgMajor // bin and lib
	pgShare   = "/usr/share/postgresql/" + pgMajor
	pgUID     = 70 // the alpine image's postgres user, the StatefulSet's runAsUser
)

// pgSkip leaves out what only the LLVM JIT needs: llvmjit.so links
// libLLVM (110 MB) and libz3 (23 MB), the bitcode is 26 MB more. Without
// the provider Postgres runs every query without JIT (it says so only at
// DEBUG1), as a build without --with-llvm does. The manual pages are left
// out too.
func pgSkip(p string) bool {
	switch {
	case strings.HasPrefix(filepath.Base(p), "llvmjit"),
		p == pgLib+"/lib/bitcode",
		p == pgShare+"/man":
		return true
	}
	return false
}

func postgresImage(ctx context.Context, root, arch, goOut string, busybox []file) (localImage, error) {
	if _, err := os.Stat(pgLib + "/bin/postgres"); err != nil {
		return localImage{}, fmt.Errorf("%s/bin/postgres is missing: install the Debian package %s (apt-get install -y %s)", pgLib, pgPackage, pgPackage)
	}
	pkg, err := dpkgVersion(pgPackage)
	if err != nil {
		return localImage{}, err
	}
	bb, err := dpkgVersion("busybox-static")
	if err != nil {
		return localImage{}, err
	}
	entrypoint := filepath.Join(goOut, "docker-entrypoint")
	if err := goBuild(Spec{Module: "hack/images", Package: "./cmd/pg-entrypoint"}, Options{Root: root, Arch: arch}, entrypoint); err != nil {
		return localImage{}, err
	}

	t := newTree()
	for _, d := range []string{pgLib, pgShare, "/usr/share/zoneinfo", "/usr/lib/locale/C.utf8"} {
		if err := t.hostDir(d, pgSkip); err != nil {
			return localImage{}, err
		}
	}
	// Every ELF file of the server (programs, extensions, encoding
	// conversions) with the libraries ldd finds for it, and the loader.
	var elves []string
	err = filepath.WalkDir(pgLib, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if pgSkip(p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			if dyn, err := isDynamicELF(p); err != nil {
				return err
			} else if dyn {
				elves = append(elves, p)
			}
		}
		return nil
	})
	if err != nil {
		return localImage{}, err
	}
	if err := t.sharedLibraries(elves); err != nil {
		return localImage{}, err
	}
	// As the official image: listen on every address, so the pod IP
	// (probes, Services) reaches the server; Debian's sample says localhost.
	sample, err := listenEverywhere(pgShare + "/postgresql.conf.sample")
	if err != nil {
		return localImage{}, err
	}
	t.add(file{path: strings.TrimPrefix(pgShare, "/") + "/postgresql.conf.sample", mode: 0o644, data: sample})
	for _, f := range busybox {
		t.add(f)
	}
	for _, f := range []file{
		{path: "usr/local/bin/docker-entrypoint", mode: 0o755, src: entrypoint},
		{path: "usr/local/bin/docker-entrypoint.sh", mode: 0o777, link: "docker-entrypoint"},
		{path: "docker-entrypoint-initdb.d/", mode: 0o755, dir: true},
		// As in the official image: the home, PGDATA's parent (1777, so any
		// user can create PGDATA in it; the entrypoint makes PGDATA 0700)
		// and the socket directory belong to postgres.
		{path: "var/lib/postgresql/", mode: 0o755, dir: true, owner: pgUID},
		{path: "var/lib/postgresql/data/", mode: 0o1777, dir: true, owner: pgUID},
		{path: "var/run/postgresql/", mode: 0o3777, dir: true, owner: pgUID},
	} {
		t.add(f)
	}
	upstream, _, _ := strings.Cut(pkg.Version, "-") // 15.18-0+deb12u1
	return localImage{
		Ref: "localhost/shop-platform/postgres:" + pgMajor + "-debian", Title: "postgres", Version: pgMajor + "-debian",
		Description: fmt.Sprintf("PostgreSQL %s from Debian %s's package %s %s (server, client tools, contrib; without the LLVM JIT provider) "+
			"with the shared libraries it links, the C.UTF-8 locale and tzdata, BusyBox (busybox-static %s) as /bin, "+
			"and an entrypoint implementing the official postgres image's docker-entrypoint contract (hack/images/cmd/pg-entrypoint); "+
			"runs unchanged where the operator runs postgres:%s-alpine (uid 70); packaged by shop-operator hack/images",
			upstream, debianCodename(), pgPackage, pkg.Version, bb.Version, pgMajor),
		Source:   "https://tracker.debian.org/pkg/" + pgPackage,
		Licenses: "PostgreSQL AND GPL-2.0-only",
		Accounts: []account{{Name: "postgres", UID: pgUID, Home: "/var/lib/postgresql", Shell: "/bin/sh"}},
		Path:     "/usr/local/bin:" + pgLib + "/bin:/usr/bin:/bin",
		Env: []string{
			"PG_MAJOR=" + pgMajor,
			"PG_VERSION=" + upstream,
			"PGDATA=/var/lib/postgresql/data",
			"LANG=C.UTF-8",
		},
		Entrypoint: []string{"docker-entrypoint"},
		Cmd:        []string{"postgres"},
		Ports:      []string{"5432/tcp"},
		// As the official image: SIGINT is Postgres' fast shutdown.
		StopSignal: "SIGINT",
		Layers: []localLayer{{
			CreatedBy: fmt.Sprintf("hack/images: %s %s, busybox-static %s, the libraries they link, docker-entrypoint", pgPackage, pkg.Version, bb.Version),
			Files:     t.list(),
		}},
	}, nil
}

// listenEverywhere returns the sample configuration with listen_addresses
// set to '*', the one line the official image changes in it.
func listenEverywhere(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`(?m)^#?listen_addresses\s*=\s*\S+`)
	if !re.Match(data) {
		return nil, fmt.Errorf("%s has no listen_addresses line", path)
	}
	return re.ReplaceAll(data, []byte("listen_addresses = '*'")), nil
}
