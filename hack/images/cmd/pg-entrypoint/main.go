// Command docker-entrypoint starts Postgres in the local cluster's Postgres
// image (localhost/shop-platform/postgres) the way the official postgres
// image's docker-entrypoint.sh does, so that a StatefulSet written for the
// official image runs it unchanged. It implements that script's documented
// contract (https://hub.docker.com/_/postgres, "Environment Variables" and
// "Initialization scripts"); it is not a translation of the script:
//
//   - A first argument starting with '-' means "postgres <args>".
//   - For "postgres" (unless asking for --help, --version, --describe-config):
//     create $PGDATA (mode 0700) and the socket directory (see below); as
//     root, hand them to the postgres user and run again as that user.
//   - With $PGDATA/PG_VERSION missing: POSTGRES_PASSWORD is required (or
//     POSTGRES_HOST_AUTH_METHOD=trust); initdb --username=$POSTGRES_USER
//     (default postgres) with the password from a temporary file, plus
//     $POSTGRES_INITDB_ARGS (split on white space) and, unless those set them,
//     --encoding=UTF8 --locale=C.UTF-8; POSTGRES_INITDB_WALDIR becomes
//     --waldir. pg_hba.conf gets "host all all all <method>", the method being
//     POSTGRES_HOST_AUTH_METHOD or the server's password_encryption
//     (scram-sha-256).
//   - A temporary server with the container's own arguments plus
//     -c listen_addresses= -p ${PGPORT:-5432} (the Unix socket only) runs
//     while $POSTGRES_DB (default $POSTGRES_USER) is created if missing and
//     the files of /docker-entrypoint-initdb.d run in name order: an
//     executable *.sh is run, any other *.sh is run with sh (the official
//     script sources it into its own shell: its functions are not available
//     here), *.sql and *.sql.gz go to psql -v ON_ERROR_STOP=1, anything else
//     is ignored with a log line. They see POSTGRES_USER, POSTGRES_PASSWORD,
//     POSTGRES_DB, PGDATA, PGPASSWORD and PGHOST/PGPORT pointing at the
//     temporary server's socket (the directory of -k or -c
//     unix_socket_directories= in the arguments, else /var/run/postgresql).
//   - The temporary server stops (pg_ctl -m fast -w stop) and the entrypoint
//     replaces itself with the command (exec), so Postgres runs as PID 1.
//
// The *_FILE variants (POSTGRES_PASSWORD_FILE, ...) are read as in the
// official image. A failure exits non-zero with a message naming the step;
// SIGTERM or SIGINT during the initialisation are forwarded to the running
// step, the temporary server is stopped and the entrypoint exits with
// 128+signal. PG_ENTRYPOINT_INITDB_DIR replaces /docker-entrypoint-initdb.d
// (for tests; the image does not set it).
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	defaultPGDATA  = "/var/lib/postgresql/data"
	defaultInitDir = "/docker-entrypoint-initdb.d"
	socketDir      = "/var/run/postgresql"
)

// sigName names the signals the entrypoint handles.
func sigName(s os.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return s.String()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "docker-entrypoint: "+format+"\n", args...)
}

// stepError names the step that failed.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }

func step(name string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{step: name, err: err}
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		logf("no command (the image's CMD is [postgres])")
		os.Exit(2)
	}
	if strings.HasPrefix(args[0], "-") {
		args = append([]string{"postgres"}, args...)
	}
	if args[0] == "postgres" && !wantHelp(args[1:]) {
		e := &entrypoint{}
		if err := e.setup(args); err != nil {
			code := 1
			if e.caught != nil {
				code = 128 + int(e.caught.(syscall.Signal))
			}
			logf("%v", err)
			os.Exit(code)
		}
	}
	run(args)
}

// wantHelp: postgres only prints something and exits.
func wantHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-?", "--help", "--describe-config", "-V", "--version":
			return true
		}
	}
	return false
}

// run replaces the entrypoint with the command.
func run(args []string) {
	p, err := exec.LookPath(args[0])
	if err != nil {
		logf("%s: %v", args[0], err)
		os.Exit(127)
	}
	err = syscall.Exec(p, args, os.Environ())
	logf("exec %s: %v", p, err)
	os.Exit(126)
}

type entrypoint struct {
	pgdata, user, password, db, initdbArgs, authMethod string
	socket, port                                       string

	mu      sync.Mutex
	child   *exec.Cmd // the step running now
	caught  os.Signal // SIGTERM or SIGINT, once received
	started bool      // the temporary server runs
}

func (e *entrypoint) setup(args []string) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go e.forward(sigs)

	if err := e.readEnv(); err != nil {
		return step("environment", err)
	}
	e.socket, e.port = socketOf(args[1:]), os.Getenv("PGPORT")
	if e.port == "" {
		e.port = "5432"
	}
	if err := e.createDirs(); err != nil {
		return step("creating "+e.pgdata, err)
	}
	if os.Geteuid() == 0 {
		return step("switching to the postgres user", e.dropRoot())
	}
	if st, err := os.Stat(filepath.Join(e.pgdata, "PG_VERSION")); err == nil && st.Size() > 0 {
		logf("%s holds a database (PG_VERSION exists): skipping initialisation", e.pgdata)
		return nil
	}
	if e.password == "" && e.authMethod != "trust" {
		return step("checking the environment", errors.New(`the database is uninitialised and no superuser password is set: `+
			`set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value, `+
			`or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without a password (not recommended)`))
	}
	if e.authMethod == "trust" {
		logf("WARNING: POSTGRES_HOST_AUTH_METHOD=trust: every host may connect as any user without a password")
	}
	initDir := os.Getenv("PG_ENTRYPOINT_INITDB_DIR")
	if initDir == "" {
		initDir = defaultInitDir
	}
	scripts, err := initFiles(initDir)
	if err != nil {
		return step("reading "+initDir, err)
	}
	if err := e.initdb(); err != nil {
		return step("initdb", err)
	}
	if err := e.hba(args[1:]); err != nil {
		return step("pg_hba.conf", err)
	}
	if err := e.startTemp(args[1:]); err != nil {
		return e.abort(step("starting the temporary server (pg_ctl start)", err))
	}
	if err := e.createDB(); err != nil {
		return e.abort(step("creating the database "+e.db, err))
	}
	for _, f := range scripts {
		if err := e.initFile(f); err != nil {
			return e.abort(step("running "+f, err))
		}
	}
	if err := e.stopTemp(); err != nil {
		return step("stopping the temporary server (pg_ctl stop)", err)
	}
	if e.interrupted() {
		return step("initialisation", fmt.Errorf("interrupted by %s", sigName(e.caught)))
	}
	logf("initialisation complete; starting %s", strings.Join(args, " "))
	return nil
}

// forward passes SIGTERM or SIGINT to the step running now (its process
// group); the step then fails and setup stops the temporary server.
func (e *entrypoint) forward(sigs <-chan os.Signal) {
	for s := range sigs {
		e.mu.Lock()
		if e.caught == nil {
			e.caught = s
		}
		if e.child != nil && e.child.Process != nil {
			_ = syscall.Kill(-e.child.Process.Pid, s.(syscall.Signal))
		}
		e.mu.Unlock()
		logf("received %s during the initialisation: stopping", sigName(s))
	}
}

func (e *entrypoint) interrupted() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.caught != nil
}

// abort stops the temporary server after a failed step.
func (e *entrypoint) abort(err error) error {
	if e.started {
		if serr := e.stopTemp(); serr != nil {
			logf("stopping the temporary server: %v", serr)
		}
	}
	if e.interrupted() {
		return fmt.Errorf("%w (interrupted by %s)", err, sigName(e.caught))
	}
	return err
}

// fileEnv reads VAR or VAR_FILE (not both), with a default.
func fileEnv(name, def string) (string, error) {
	v, hasV := os.LookupEnv(name)
	f, hasF := os.LookupEnv(name + "_FILE")
	if hasV && hasF && v != "" && f != "" {
		return "", fmt.Errorf("both %s and %s_FILE are set (they are exclusive)", name, name)
	}
	if hasF && f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", name, err)
		}
		v = strings.TrimRight(string(b), "\n")
	}
	if v == "" {
		v = def
	}
	os.Setenv(name, v)
	os.Unsetenv(name + "_FILE")
	return v, nil
}

func (e *entrypoint) readEnv() error {
	var err error
	if e.password, err = fileEnv("POSTGRES_PASSWORD", ""); err != nil {
		return err
	}
	if e.password == "" {
		os.Unsetenv("POSTGRES_PASSWORD")
	}
	if e.user, err = fileEnv("POSTGRES_USER", "postgres"); err != nil {
		return err
	}
	if e.db, err = fileEnv("POSTGRES_DB", e.user); err != nil {
		return err
	}
	if e.initdbArgs, err = fileEnv("POSTGRES_INITDB_ARGS", ""); err != nil {
		return err
	}
	e.authMethod = os.Getenv("POSTGRES_HOST_AUTH_METHOD")
	e.pgdata = os.Getenv("PGDATA")
	if e.pgdata == "" {
		e.pgdata = defaultPGDATA
		os.Setenv("PGDATA", e.pgdata)
	}
	return nil
}

// createDirs makes PGDATA (0700) and the socket directory; failures to
// change modes are left for Postgres to report, as in the official image.
func (e *entrypoint) createDirs() error {
	if err := os.MkdirAll(e.pgdata, 0o700); err != nil {
		return err
	}
	_ = os.Chmod(e.pgdata, 0o700)
	if os.MkdirAll(e.socket, 0o3775) == nil {
		_ = os.Chmod(e.socket, 0o3775)
	}
	if w := os.Getenv("POSTGRES_INITDB_WALDIR"); w != "" {
		if err := os.MkdirAll(w, 0o700); err != nil {
			return err
		}
		_ = os.Chmod(w, 0o700)
	}
	return nil
}

// dropRoot gives the data directories to the postgres user and runs the
// entrypoint again as that user (the official image does this with gosu).
func (e *entrypoint) dropRoot() error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dirs := []string{e.pgdata, e.socket}
	if w := os.Getenv("POSTGRES_INITDB_WALDIR"); w != "" {
		dirs = append(dirs, w)
	}
	for _, d := range dirs {
		err := filepath.Walk(d, func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
				return nil
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil && !(d == e.socket && errors.Is(err, os.ErrNotExist)) {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return err
	}
	if err := syscall.Setgid(gid); err != nil {
		return err
	}
	if err := syscall.Setuid(uid); err != nil {
		return err
	}
	os.Setenv("HOME", u.HomeDir)
	return syscall.Exec(self, os.Args, os.Environ())
}

// initFiles lists the initialisation files in name order, without hidden
// names (a ConfigMap volume's ..data and its timestamped directory).
func initFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range entries { // ReadDir sorts by name
		if !strings.HasPrefix(d.Name(), ".") {
			out = append(out, filepath.Join(dir, d.Name()))
		}
	}
	return out, nil
}

// start runs a step's command in its own process group (so a forwarded
// signal reaches its children too) and waits for it.
func (e *entrypoint) start(cmd *exec.Cmd) error { return e.startCmd(cmd, false) }

// startCmd with force runs cmd even after a signal (to stop the server).
func (e *entrypoint) startCmd(cmd *exec.Cmd, force bool) error {
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	e.mu.Lock()
	if e.caught != nil && !force {
		e.mu.Unlock()
		return fmt.Errorf("not started: interrupted by %s", sigName(e.caught))
	}
	if err := cmd.Start(); err != nil {
		e.mu.Unlock()
		return err
	}
	e.child = cmd
	e.mu.Unlock()
	err := cmd.Wait()
	e.mu.Lock()
	e.child = nil
	e.mu.Unlock()
	return err
}

func hasArg(args []string, names ...string) bool {
	for _, a := range args {
		for _, n := range names {
			if a == n || strings.HasPrefix(a, n+"=") || (len(n) == 2 && strings.HasPrefix(a, n) && !strings.HasPrefix(n, "--")) {
				return true
			}
		}
	}
	return false
}

func (e *entrypoint) initdb() error {
	pw, err := os.CreateTemp("", "pgpass-")
	if err != nil {
		return err
	}
	defer os.Remove(pw.Name())
	// initdb refuses an empty file: the password and a newline.
	if _, err := fmt.Fprintf(pw, "%s\n", e.password); err != nil {
		pw.Close()
		return err
	}
	if err := pw.Close(); err != nil {
		return err
	}
	args := []string{"--username=" + e.user, "--pwfile=" + pw.Name()}
	if w := os.Getenv("POSTGRES_INITDB_WALDIR"); w != "" {
		args = append(args, "--waldir", w)
	}
	extra := strings.Fields(e.initdbArgs)
	args = append(args, extra...)
	if !hasArg(extra, "-E", "--encoding") {
		args = append(args, "--encoding=UTF8")
	}
	if !hasArg(extra, "--locale", "--no-locale") {
		args = append(args, "--locale=C.UTF-8")
	}
	return e.start(exec.Command("initdb", args...))
}

// hba lets hosts in with the method of POSTGRES_HOST_AUTH_METHOD, by
// default the one passwords are stored for.
func (e *entrypoint) hba(serverArgs []string) error {
	method := e.authMethod
	if method == "" {
		var out bytes.Buffer
		cmd := exec.Command("postgres", append([]string{"-C", "password_encryption"}, serverArgs...)...)
		cmd.Stdout = &out
		if err := e.start(cmd); err != nil {
			return fmt.Errorf("postgres -C password_encryption: %w", err)
		}
		method = strings.TrimSpace(out.String())
	}
	f, err := os.OpenFile(filepath.Join(e.pgdata, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	text := "\n"
	if method == "trust" {
		text += "# POSTGRES_HOST_AUTH_METHOD=trust: every host connects without a password\n"
	}
	text += "host all all all " + method + "\n"
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// socketOf is the first socket directory the server arguments set (the
// last -k or unix_socket_directories wins), else the default.
func socketOf(args []string) string {
	dir := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		var v string
		switch {
		case a == "-k" && i+1 < len(args):
			v = args[i+1]
			i++
		case strings.HasPrefix(a, "-k"):
			v = a[2:]
		case a == "-c" && i+1 < len(args):
			v = args[i+1]
			i++
			name, val, ok := strings.Cut(v, "=")
			if !ok || strings.TrimSpace(name) != "unix_socket_directories" {
				continue
			}
			v = val
		case strings.HasPrefix(a, "--unix_socket_directories=") || strings.HasPrefix(a, "--unix-socket-directories="):
			_, v, _ = strings.Cut(a, "=")
		default:
			continue
		}
		first, _, _ := strings.Cut(v, ",")
		dir = strings.Trim(strings.TrimSpace(first), `'"`)
	}
	if dir == "" {
		return socketDir
	}
	return dir
}

// shellQuote quotes s for /bin/sh (pg_ctl passes -o through it).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// clientEnv is the environment of psql and the init scripts: the
// temporary server over its socket.
func (e *entrypoint) clientEnv() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGHOST=") && !strings.HasPrefix(kv, "PGHOSTADDR=") && !strings.HasPrefix(kv, "PGPORT=") && !strings.HasPrefix(kv, "PGPASSWORD=") {
			env = append(env, kv)
		}
	}
	pass := os.Getenv("PGPASSWORD")
	if pass == "" {
		pass = e.password
	}
	return append(env, "PGHOST="+e.socket, "PGPORT="+e.port, "PGPASSWORD="+pass)
}

func (e *entrypoint) pgctl(args ...string) *exec.Cmd {
	cmd := exec.Command("pg_ctl", args...)
	pguser := os.Getenv("PGUSER")
	if pguser == "" {
		pguser = e.user
	}
	cmd.Env = append(e.clientEnv(), "PGUSER="+pguser)
	return cmd
}

func (e *entrypoint) startTemp(serverArgs []string) error {
	var opts []string
	for _, a := range append(append([]string(nil), serverArgs...), "-c", "listen_addresses=", "-p", e.port) {
		opts = append(opts, shellQuote(a))
	}
	e.started = true // from here on a failure stops it
	return e.start(e.pgctl("-D", e.pgdata, "-w", "-o", strings.Join(opts, " "), "start"))
}

func (e *entrypoint) stopTemp() error {
	err := e.startCmd(e.pgctl("-D", e.pgdata, "-m", "fast", "-w", "stop"), true)
	e.started = false
	reapOrphans()
	return err
}

// reapOrphans waits (briefly) for the temporary server: pg_ctl started it
// in the background, so as PID 1 the entrypoint inherited it.
func reapOrphans() {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.ECHILD) {
			return
		}
		if pid <= 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (e *entrypoint) psql(db string, extra ...string) *exec.Cmd {
	args := append([]string{"-v", "ON_ERROR_STOP=1", "--username", e.user, "--no-password", "--no-psqlrc", "--dbname", db}, extra...)
	cmd := exec.Command("psql", args...)
	cmd.Env = e.clientEnv()
	return cmd
}

func (e *entrypoint) createDB() error {
	var out bytes.Buffer
	q := e.psql("postgres", "--set", "db="+e.db, "--tuples-only", "--no-align")
	q.Stdin = strings.NewReader("SELECT 1 FROM pg_database WHERE datname = :'db';\n")
	q.Stdout = &out
	if err := e.start(q); err != nil {
		return err
	}
	if strings.TrimSpace(out.String()) == "1" {
		return nil
	}
	c := e.psql("postgres", "--set", "db="+e.db)
	c.Stdin = strings.NewReader("CREATE DATABASE :\"db\";\n")
	return e.start(c)
}

func (e *entrypoint) initFile(f string) error {
	st, err := os.Stat(f) // ConfigMap files are symlinks: follow them
	if err != nil {
		return err
	}
	name := filepath.Base(f)
	switch {
	case st.IsDir():
		logf("ignoring %s (a directory)", f)
		return nil
	case strings.HasSuffix(name, ".sh"):
		var cmd *exec.Cmd
		if syscall.Access(f, 1 /* X_OK */) == nil {
			logf("running %s", f)
			cmd = exec.Command(f)
		} else {
			logf("running %s with sh (not executable; the official image sources it)", f)
			cmd = exec.Command("sh", f)
		}
		cmd.Env = e.clientEnv()
		return e.start(cmd)
	case strings.HasSuffix(name, ".sql"):
		logf("running %s", f)
		return e.start(e.psql(e.db, "-f", f))
	case strings.HasSuffix(name, ".sql.gz"):
		logf("running %s", f)
		r, err := os.Open(f)
		if err != nil {
			return err
		}
		defer r.Close()
		zr, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		cmd := e.psql(e.db)
		cmd.Stdin = io.NopCloser(zr)
		return e.start(cmd)
	default:
		logf("ignoring %s (not *.sh, *.sql or *.sql.gz)", f)
		return nil
	}
}
