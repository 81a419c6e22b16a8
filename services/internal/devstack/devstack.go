// Package devstack runs the whole shop on loopback: a throwaway Postgres
// (pgtest) with one database each for auth, catalog and orders, and the five
// services as `shopd` subprocesses on free ports. `make storefront`, the
// browser end-to-end test and the load benchmarks use it.
package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopplatform/shop-operator/services/internal/pgtest"
)

// Databases are the services that own a database of the same name.
var Databases = []string{"auth", "catalog", "orders"}

// Options configure a stack.
type Options struct {
	// Shopd is the path of the shopd binary (see BuildShopd).
	Shopd string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Env is added to every service's environment (e.g. LOG_LEVEL=warn).
	Env []string
	// ServiceEnv is added to one service's environment.
	ServiceEnv map[string][]string
	// ReadyTimeout bounds the wait for each service's /readyz (default 90s).
	ReadyTimeout time.Duration
}

// Service is one running shopd subprocess.
type Service struct {
	Name      string
	HTTPAddr  string // 127.0.0.1:port of the API
	AdminAddr string // 127.0.0.1:port of /healthz, /readyz, /metrics
	LogPath   string
	cmd       *exec.Cmd
	done      chan struct{}
	waitErr   error
}

// URL is the base URL of the service's API.
func (s *Service) URL() string { return "http://" + s.HTTPAddr }

// AdminURL is the base URL of the admin endpoints.
func (s *Service) AdminURL() string { return "http://" + s.AdminAddr }

// Stack is a running shop.
type Stack struct {
	Dir      string // temp dir with the service logs; removed by Stop
	PG       *pgtest.Server
	DBURLs   map[string]string
	Services map[string]*Service
	log      io.Writer
	stopOnce sync.Once
}

// Frontend is the storefront's URL.
func (s *Stack) Frontend() string { return s.Services["frontend"].URL() }

// BuildShopd compiles cmd/shopd into dir (the Go build cache keeps it quick
// after the first time). It runs the go command in the services module.
func BuildShopd(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "shopd")
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/shopplatform/shop-operator/services/cmd/shopd")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build shopd: %v\n%s", err, b)
	}
	return out, nil
}

// Start brings up Postgres and the five services and waits until every
// service reports ready. On error everything started so far is stopped.
func Start(ctx context.Context, o Options) (st *Stack, err error) {
	if o.Shopd == "" {
		return nil, errors.New("devstack: Options.Shopd is required")
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 90 * time.Second
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	dir, err := os.MkdirTemp("", "shop-devstack-")
	if err != nil {
		return nil, err
	}
	st = &Stack{Dir: dir, DBURLs: map[string]string{}, Services: map[string]*Service{}, log: logw}
	defer func() {
		if err != nil {
			st.Stop()
			st = nil
		}
	}()

	fmt.Fprintln(logw, "starting Postgres (Debian postgresql-15, throwaway cluster)...")
	if st.PG, err = pgtest.Start(); err != nil {
		return st, err
	}
	if err = st.createDatabases(ctx); err != nil {
		return st, err
	}

	for _, name := range []string{"auth", "catalog", "payment", "orders", "frontend"} {
		s := &Service{Name: name, LogPath: filepath.Join(dir, name+".log"), done: make(chan struct{})}
		if s.HTTPAddr, err = freeAddr(); err != nil {
			return st, err
		}
		if s.AdminAddr, err = freeAddr(); err != nil {
			return st, err
		}
		st.Services[name] = s
	}
	// Dependencies first: orders needs catalog, payment and auth's JWKS;
	// the frontend needs all three APIs.
	for _, wave := range [][]string{{"auth", "catalog", "payment"}, {"orders"}, {"frontend"}} {
		for _, name := range wave {
			if err = st.startService(name, o); err != nil {
				return st, err
			}
		}
		for _, name := range wave {
			if err = st.waitReady(ctx, st.Services[name], o.ReadyTimeout); err != nil {
				return st, err
			}
			fmt.Fprintf(logw, "  %-8s ready on %s (admin %s)\n", name, st.Services[name].URL(), st.Services[name].AdminURL())
		}
	}
	return st, nil
}

func (st *Stack) createDatabases(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", st.PG.Port)
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to Postgres: %w", err)
	}
	defer conn.Close(context.Background())
	for _, db := range Databases {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return fmt.Errorf("create database %s: %w", db, err)
		}
		st.DBURLs[db] = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", st.PG.Port, db)
	}
	return nil
}

func (st *Stack) env(name string, o Options) []string {
	s := st.Services
	env := append(os.Environ(),
		"HTTP_ADDR="+s[name].HTTPAddr,
		"ADMIN_ADDR="+s[name].AdminAddr,
		"AUTH_URL="+s["auth"].URL(),
		"CATALOG_URL="+s["catalog"].URL(),
		"ORDERS_URL="+s["orders"].URL(),
		"PAYMENT_URL="+s["payment"].URL(),
		"DEPLOYMENT_ENVIRONMENT=development",
		"OTEL_EXPORTER_OTLP_ENDPOINT=",
	)
	if u, ok := st.DBURLs[name]; ok {
		env = append(env, "DATABASE_URL="+u)
	}
	env = append(env, o.Env...)
	return append(env, o.ServiceEnv[name]...)
}

func (st *Stack) startService(name string, o Options) error {
	s := st.Services[name]
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return err
	}
	s.cmd = exec.Command(o.Shopd, name)
	s.cmd.Env = st.env(name, o)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Own process group (a terminal's Ctrl-C reaches only us; we stop the
	// services in order) and die with us if we are killed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	return nil
}

func (st *Stack) waitReady(ctx context.Context, s *Service, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: 3 * time.Second}
	var last string
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%s exited during start (%v); last log lines:\n%s", s.Name, s.waitErr, tail(s.LogPath, 30))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := c.Get(s.AdminURL() + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status + " " + string(b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %s; last log lines:\n%s", s.Name, limit, last, tail(s.LogPath, 30))
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// Stop stops the services (frontend first, each drained with SIGTERM, killed
// after 25s), then Postgres, and removes the temp dir. It is safe to call twice.
func (st *Stack) Stop() {
	st.stopOnce.Do(func() {
		for _, name := range []string{"frontend", "orders", "payment", "catalog", "auth"} {
			s := st.Services[name]
			if s == nil || s.cmd == nil || s.cmd.Process == nil {
				continue
			}
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(25 * time.Second):
				_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
				<-s.done
			}
		}
		if st.PG != nil {
			st.PG.Stop()
		}
		os.RemoveAll(st.Dir)
	})
}

// Logs returns the last n lines of a service's log (for test failures).
func (st *Stack) Logs(name string, n int) string {
	if s := st.Services[name]; s != nil {
		return tail(s.LogPath, n)
	}
	return ""
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// CPUTime is the user+system CPU time the named services' processes have
// used so far (from /proc; Linux only).
func (st *Stack) CPUTime(names ...string) (time.Duration, error) {
	var total time.Duration
	for _, n := range names {
		s := st.Services[n]
		if s == nil || s.cmd == nil || s.cmd.Process == nil {
			return 0, fmt.Errorf("no running service %q", n)
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
		if err != nil {
			return 0, err
		}
		// Fields after the parenthesised command: state is field 3; utime
		// and stime are fields 14 and 15, in clock ticks (100 per second).
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			return 0, fmt.Errorf("short /proc stat for %s", n)
		}
		for _, v := range f[11:13] {
			ticks, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, err
			}
			total += time.Duration(ticks) * 10 * time.Millisecond
		}
	}
	return total, nil
}
