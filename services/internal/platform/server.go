package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"
)

// Check is a readiness probe: a database ping or a peer's /healthz.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Handler wraps an application mux with the server span and RED metrics
// per route (serverTelemetry), panic recovery, the request body limit and
// the access log. service is the span's service only through the resource;
// span names come from the routes.
func Handler(service string, mux http.Handler) http.Handler {
	st := newServerTelemetry()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		ctx, span := st.start(r)
		r = r.WithContext(ctx)
		var body *countingBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &countingBody{rc: http.MaxBytesReader(w, r.Body, MaxBodyBytes)}
			r.Body = body
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			v := recover()
			if v != nil && v != http.ErrAbortHandler {
				slog.ErrorContext(ctx, "panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				WriteProblem(sw, r, NewProblem(http.StatusInternalServerError, "internal", ""))
			}
			var read int64
			if body != nil {
				read = body.n
			}
			st.end(ctx, span, r, sw, read, began)
			// One access line per request, carrying trace_id: debug for
			// success and client errors, error for server errors.
			// Checking the level first skips building the line's
			// arguments (allocations on every request) when it is off.
			lvl := slog.LevelDebug
			if sw.status >= 500 {
				lvl = slog.LevelError
			}
			if l := slog.Default(); l.Enabled(ctx, lvl) {
				l.LogAttrs(ctx, lvl, "request", slog.String("method", r.Method), slog.String("route", r.Pattern),
					slog.Int("status", sw.status), slog.Int64("duration_ms", time.Since(began).Milliseconds()))
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
		}()
		mux.ServeHTTP(sw, r)
	})
}

// NotFound is a problem-JSON 404 handler for unmatched routes ("/").
func NotFound(w http.ResponseWriter, r *http.Request) {
	WriteProblem(w, r, NewProblem(http.StatusNotFound, "not_found", "no such resource"))
}

// AdminMux serves /healthz (alive), /readyz (all checks pass) and /metrics.
func AdminMux(metrics http.Handler, checks ...Check) *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// Probes run every few seconds per pod: their database pings and
		// peer calls make no spans (WithoutTracing).
		ctx, cancel := context.WithTimeout(WithoutTracing(r.Context()), 3*time.Second)
		defer cancel()
		failed := map[string]string{}
		for _, c := range checks {
			if err := c.Func(ctx); err != nil {
				failed[c.Name] = err.Error()
			}
		}
		if len(failed) > 0 {
			p := NewProblem(http.StatusServiceUnavailable, "not_ready", "")
			for n, e := range failed {
				p.Errors = append(p.Errors, FieldError{Field: n, Message: e})
			}
			WriteProblem(w, r, p)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if metrics != nil {
		m.Handle("GET /metrics", metrics)
	}
	return m
}

// NewServer returns an http.Server with timeouts set against slow clients.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Serve runs the application server on cfg.HTTPAddr and the admin server on
// cfg.AdminAddr until ctx is cancelled, then drains in-flight requests (up
// to 20s) and flushes telemetry.
func Serve(ctx context.Context, cfg Config, tel *Telemetry, app http.Handler, checks ...Check) error {
	// The service has read all its settings by now.
	env, err := checkEnv(cfg.Service)
	if err != nil {
		return err
	}
	appSrv := NewServer(cfg.HTTPAddr, Handler(cfg.ServiceName, app))
	var metrics http.Handler
	if tel != nil {
		metrics = tel.MetricsHandler
	}
	adminSrv := NewServer(cfg.AdminAddr, AdminMux(metrics, checks...))
	appLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen HTTP_ADDR: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		appLn.Close()
		return fmt.Errorf("listen ADMIN_ADDR: %w", err)
	}
	// Names only: which settings reached the service, never their values.
	slog.Info("serving", "http_addr", appLn.Addr().String(), "admin_addr", adminLn.Addr().String(), "version", Version, "env", env)
	errc := make(chan error, 2)
	go func() { errc <- appSrv.Serve(appLn) }()
	go func() { errc <- adminSrv.Serve(adminLn) }()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	slog.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err1 := appSrv.Shutdown(sctx)
	err2 := adminSrv.Shutdown(sctx)
	if tel != nil {
		tctx, tcancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer tcancel()
		_ = tel.Shutdown(tctx)
	}
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return errors.Join(runErr, err1, err2)
}

// statusWriter records the status and the body bytes written, for the
// metrics and the access log.
type statusWriter struct {
	http.ResponseWriter
	status      int
	written     int64
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
