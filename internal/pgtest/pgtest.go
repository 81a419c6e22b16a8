// Package pgtest starts a real, throwaway Postgres for the operator's tests
// (the services module has its own, services/internal/pgtest: modules do not
// share internal packages).
package pgtest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a real, throwaway Postgres on loopback: Debian's server
// binaries, run as the postgres user when the test runs as root (Postgres
// refuses root). Host connections need the superuser's password, as in the
// cluster.
type Server struct {
	Bin, Dir string // the server's binaries; its files (owned by the postgres user)
	Port     int
	Password string // the superuser's
	Log      string // the server's log file
}

// Bin holds Debian's Postgres server binaries; PGTEST_BINDIR overrides it.
func Bin() string {
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		return d
	}
	return "/usr/lib/postgresql/15/bin"
}

// Start starts Postgres with the superuser's password and the server
// arguments that configure (may be nil) returns; configure may write files
// into dir (owned by the postgres user; uid and gid are the user's when the
// test runs as root, else -1). It is stopped when the test ends; without
// Debian's binaries the test is skipped.
func Start(t *testing.T, password string, configure func(dir string, uid, gid int) []string) *Server {
	t.Helper()
	bin := Bin()
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		t.Skipf("no Postgres server at %s (apt-get install postgresql-15, or set PGTEST_BINDIR)", bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Not t.TempDir: its parent is private to root, and Postgres runs as postgres.
	dir, err := os.MkdirTemp("", "shop-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg := &Server{Bin: bin, Dir: dir, Password: password}
	asPostgres := func(ctx context.Context, name string, args ...string) *exec.Cmd {
		path := filepath.Join(bin, name)
		if os.Geteuid() != 0 {
			return exec.CommandContext(ctx, path, args...)
		}
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(pg.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root needs the postgres user: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres(ctx, "initdb", "-D", data, "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pg.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := []string{"-D", data, "-p", strconv.Itoa(pg.Port), "-h", "127.0.0.1", "-k", dir, "-c", "fsync=off"}
	if configure != nil {
		args = append(args, configure(dir, uid, gid)...)
	}
	server := asPostgres(context.Background(), "postgres", args...)
	server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pg.Log = filepath.Join(t.TempDir(), "postgres.log")
	logf, err := os.Create(pg.Log)
	if err != nil {
		t.Fatal(err)
	}
	server.Stdout, server.Stderr = logf, logf
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-server.Process.Pid, syscall.SIGTERM)
		_ = server.Wait()
		logf.Close()
	})
	for range 150 { // at most about 30 s
		if _, err := pg.PSQL(ctx, "postgres", "select 1"); err == nil {
			return pg
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, _ := os.ReadFile(logf.Name())
	t.Fatalf("Postgres did not start:\n%s", b)
	return nil
}

// Env is the superuser's connection to database as PG* variables over TCP
// with its password (as the backup container has it), and the server's tools
// on PATH.
func (pg *Server) Env(database string) []string {
	return append(os.Environ(),
		"PATH="+pg.Bin+":"+os.Getenv("PATH"),
		"PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(pg.Port), "PGDATABASE="+database,
		"PGUSER=postgres", "PGPASSWORD="+pg.Password, "PGCONNECT_TIMEOUT=5")
}

// PSQL runs SQL as the superuser and returns the unaligned output.
func (pg *Server) PSQL(ctx context.Context, database, sql string) (string, error) {
	c := exec.CommandContext(ctx, filepath.Join(pg.Bin, "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql)
	c.Env = pg.Env(database)
	out, err := c.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// MustSQL is PSQL, failing the test on an error.
func (pg *Server) MustSQL(t testing.TB, ctx context.Context, database, sql string) string {
	t.Helper()
	out, err := pg.PSQL(ctx, database, sql)
	if err != nil {
		t.Fatalf("%s: %v\n%s", sql, err, out)
	}
	return out
}
