// Package auth is the identity service: registration, login with lockout,
// EdDSA access tokens, rotating refresh tokens, roles and the JWKS.
package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the embedded schema migrations.
func Migrations() fs.FS { f, _ := fs.Sub(migrationFiles, "migrations"); return f }

// Lockout policy.
const (
	MaxFailures   = 5
	FailureWindow = 15 * time.Minute
	LockDuration  = 15 * time.Minute
	RefreshTTL    = 30 * 24 * time.Hour
)

// Service is the auth HTTP API.
type Service struct {
	db     *pgxpool.Pool
	issuer *Issuer
	verify *platform.Verifier
	now    func() time.Time
	logins metric.Int64Counter
	regs   metric.Int64Counter
}

// New builds the service on a migrated database.
func New(db *pgxpool.Pool, issuer *Issuer) *Service {
	m := otel.Meter("github.com/shopplatform/shop-operator/services/auth")
	logins, _ := m.Int64Counter("shop.auth.logins", metric.WithDescription("Login attempts by outcome (success, failure, locked)."), metric.WithUnit("{login}"))
	regs, _ := m.Int64Counter("shop.auth.registrations", metric.WithDescription("Accounts registered."), metric.WithUnit("{user}"))
	return &Service{db: db, issuer: issuer, verify: issuer.Verifier(), now: time.Now, logins: logins, regs: regs}
}

// Routes returns the API mux.
func (s *Service) Routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /api/auth/register", s.register)
	m.HandleFunc("POST /api/auth/login", s.login)
	m.HandleFunc("POST /api/auth/refresh", s.refresh)
	m.HandleFunc("POST /api/auth/logout", s.logout)
	m.HandleFunc("GET /api/auth/me", platform.RequireAudited(s.verify, s.me))
	m.HandleFunc("PUT /api/auth/admin/users/{id}/role", platform.RequireAudited(s.verify, s.setRole, platform.RoleAdmin))
	m.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	m.HandleFunc("GET /api/auth/.well-known/jwks.json", s.jwks)
	m.HandleFunc("/", platform.NotFound)
	return m
}

// User is the public view of an account.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// Tokens is the login and refresh answer.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// RegisterRequest is the body of POST /api/auth/register.
type RegisterRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// Validate normalises the email and checks every field.
func (r *RegisterRequest) Validate() error {
	var errs []platform.FieldError
	email, ok := normEmail(r.Email)
	if !ok {
		errs = append(errs, platform.FieldError{Field: "email", Message: "must be a valid email address"})
	}
	r.Email = email
	if n := utf8.RuneCountInString(r.Password); n < 8 || n > 128 {
		errs = append(errs, platform.FieldError{Field: "password", Message: "must be 8 to 128 characters"})
	}
	r.Name = strings.TrimSpace(r.Name)
	if n := utf8.RuneCountInString(r.Name); n < 1 || n > 100 || !utf8.ValidString(r.Name) {
		errs = append(errs, platform.FieldError{Field: "name", Message: "must be 1 to 100 characters"})
	}
	if len(errs) > 0 {
		return platform.ValidationProblem(errs...)
	}
	return nil
}

func normEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > 254 || !utf8.ValidString(s) {
		return s, false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return s, false
	}
	return s, true
}

func (s *Service) register(w http.ResponseWriter, r *http.Request) {
	var req RegisterRequest
	if err := platform.DecodeJSON(r, &req); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if err := req.Validate(); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	u, err := s.CreateUser(r.Context(), req.Email, req.Password, req.Name, platform.RoleCustomer)
	if err != nil {
		s.audit(r.Context(), req.Email, "register", req.Email, "failure")
		platform.WriteProblem(w, r, err)
		return
	}
	s.regs.Add(r.Context(), 1)
	s.audit(r.Context(), u.ID, "register", u.ID, "success")
	platform.WriteJSON(w, http.StatusCreated, u)
}

// CreateUser stores a new account; a taken email is a 409.
func (s *Service) CreateUser(ctx context.Context, email, password, name, role string) (*User, error) {
	hash, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	u := &User{Email: email, Name: name, Role: role}
	err = s.db.QueryRow(ctx, `INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, $4)
		RETURNING id::text, created_at`, email, name, hash, role).Scan(&u.ID, &u.CreatedAt)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return nil, platform.NewProblem(http.StatusConflict, "email_taken", "an account with this email exists")
	}
	return u, err
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

var errBadCredentials = platform.NewProblem(http.StatusUnauthorized, "invalid_credentials", "email or password is wrong")

func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := platform.DecodeJSON(r, &req); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	ctx := r.Context()
	email, ok := normEmail(req.Email)
	if !ok || req.Password == "" || len(req.Password) > 1024 {
		platform.WriteProblem(w, r, platform.ValidationProblem(platform.FieldError{Field: "email", Message: "email and password are required"}))
		return
	}
	// Locked?
	var lockedUntil *time.Time
	err := s.db.QueryRow(ctx, `SELECT locked_until FROM login_attempts WHERE email=$1`, email).Scan(&lockedUntil)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		platform.WriteProblem(w, r, err)
		return
	}
	if lockedUntil != nil && lockedUntil.After(s.now()) {
		s.logins.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "locked")))
		s.audit(ctx, email, "login", email, "locked")
		w.Header().Set("Retry-After", strconv.Itoa(int(time.Until(*lockedUntil).Seconds())+1))
		platform.WriteProblem(w, r, platform.NewProblem(http.StatusTooManyRequests, "too_many_attempts", "too many failed logins; try again later"))
		return
	}

	var u User
	var hash string
	err = s.db.QueryRow(ctx, `SELECT id::text, email, name, role, created_at, password_hash FROM users WHERE email=$1`, email).
		Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.CreatedAt, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		hash = dummyHash
	} else if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	good, herr := CheckPassword(hash, req.Password)
	if errors.Is(err, pgx.ErrNoRows) || herr != nil || !good {
		locked, lerr := s.recordFailure(ctx, email)
		if lerr != nil {
			platform.WriteProblem(w, r, lerr)
			return
		}
		s.logins.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "failure")))
		s.audit(ctx, email, "login", email, "failure")
		if locked {
			s.audit(ctx, email, "lockout", email, "locked")
		}
		platform.WriteProblem(w, r, errBadCredentials)
		return
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM login_attempts WHERE email=$1`, email); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	tok, err := s.issueTokens(ctx, &u)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	s.logins.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "success")))
	s.audit(ctx, u.ID, "login", u.ID, "success")
	platform.WriteJSON(w, http.StatusOK, tok)
}

// recordFailure counts a failed login in the window, locking at MaxFailures.
func (s *Service) recordFailure(ctx context.Context, email string) (locked bool, err error) {
	now := s.now()
	err = s.db.QueryRow(ctx, `
		INSERT INTO login_attempts AS a (email, failures, window_start) VALUES ($1, 1, $2)
		ON CONFLICT (email) DO UPDATE SET
			failures = CASE WHEN a.window_start < $2 - $3::interval THEN 1 ELSE a.failures + 1 END,
			window_start = CASE WHEN a.window_start < $2 - $3::interval THEN $2 ELSE a.window_start END,
			locked_until = CASE WHEN a.window_start >= $2 - $3::interval AND a.failures + 1 >= $4 THEN $2 + $5::interval ELSE NULL END
		RETURNING locked_until IS NOT NULL`, email, now, FailureWindow.String(), MaxFailures, LockDuration.String()).Scan(&locked)
	return locked, err
}

func (s *Service) issueTokens(ctx context.Context, u *User) (*Tokens, error) {
	access, err := s.issuer.Issue(u.ID, u.Email, u.Role)
	if err != nil {
		return nil, err
	}
	refresh, hash := newRefreshToken()
	if _, err := s.db.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		hash, u.ID, s.now().Add(RefreshTTL)); err != nil {
		return nil, err
	}
	return &Tokens{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", ExpiresIn: int(s.issuer.TTL.Seconds())}, nil
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (s *Service) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if err := platform.DecodeJSON(r, &req); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if req.RefreshToken == "" || len(req.RefreshToken) > 200 {
		platform.WriteProblem(w, r, platform.ValidationProblem(platform.FieldError{Field: "refresh_token", Message: "is required"}))
		return
	}
	ctx := r.Context()
	// Rotate atomically: only one concurrent refresh of a token wins.
	var u User
	err := s.db.QueryRow(ctx, `
		WITH t AS (UPDATE refresh_tokens SET revoked_at = now()
			WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING user_id)
		SELECT u.id::text, u.email, u.name, u.role, u.created_at FROM users u JOIN t ON t.user_id = u.id`,
		hashToken(req.RefreshToken), s.now()).Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		// A revoked token presented again was probably stolen: revoke every
		// session of its user (RFC 9700 refresh token reuse detection).
		var uid string
		if e := s.db.QueryRow(ctx, `UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND user_id =
			(SELECT user_id FROM refresh_tokens WHERE token_hash = $1 AND revoked_at IS NOT NULL) RETURNING user_id::text`,
			hashToken(req.RefreshToken)).Scan(&uid); e == nil || uid != "" {
			s.audit(ctx, uid, "refresh_reuse", uid, "sessions_revoked")
		}
		s.audit(ctx, "unknown", "refresh", "unknown", "failure")
		platform.WriteProblem(w, r, platform.NewProblem(http.StatusUnauthorized, "invalid_refresh_token", "the refresh token is invalid, expired or revoked"))
		return
	} else if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	tok, err := s.issueTokens(ctx, &u)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	s.audit(ctx, u.ID, "refresh", u.ID, "success")
	platform.WriteJSON(w, http.StatusOK, tok)
}

func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if err := platform.DecodeJSON(r, &req); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	var uid string
	err := s.db.QueryRow(r.Context(), `UPDATE refresh_tokens SET revoked_at = now() WHERE token_hash=$1 AND revoked_at IS NULL RETURNING user_id::text`,
		hashToken(req.RefreshToken)).Scan(&uid)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		platform.WriteProblem(w, r, err)
		return
	}
	if uid != "" {
		s.audit(r.Context(), uid, "logout", uid, "success")
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) me(w http.ResponseWriter, r *http.Request) {
	c, _ := platform.ClaimsFrom(r.Context())
	u, err := s.user(r.Context(), c.Subject)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, u)
}

func (s *Service) user(ctx context.Context, id string) (*User, error) {
	var u User
	err := s.db.QueryRow(ctx, `SELECT id::text, email, name, role, created_at FROM users WHERE id::text=$1`, id).
		Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, platform.NewProblem(http.StatusNotFound, "not_found", "no such user")
	}
	return &u, err
}

type roleRequest struct {
	Role string `json:"role"`
}

func (s *Service) setRole(w http.ResponseWriter, r *http.Request) {
	c, _ := platform.ClaimsFrom(r.Context())
	id := r.PathValue("id")
	var req roleRequest
	if err := platform.DecodeJSON(r, &req); err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if req.Role != platform.RoleAdmin && req.Role != platform.RoleCustomer {
		platform.WriteProblem(w, r, platform.ValidationProblem(platform.FieldError{Field: "role", Message: "must be admin or customer"}))
		return
	}
	tag, err := s.db.Exec(r.Context(), `UPDATE users SET role=$2 WHERE id::text=$1`, id, req.Role)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	if tag.RowsAffected() == 0 {
		s.audit(r.Context(), c.Subject, "role_change", id, "failure")
		platform.WriteProblem(w, r, platform.NewProblem(http.StatusNotFound, "not_found", "no such user"))
		return
	}
	s.audit(r.Context(), c.Subject, "role_change", id, "success", "role", req.Role)
	u, err := s.user(r.Context(), id)
	if err != nil {
		platform.WriteProblem(w, r, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, u)
}

func (s *Service) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	platform.WriteJSON(w, http.StatusOK, s.issuer.JWKS())
}

// audit logs one security event in the services' common shape
// (platform.Audit). Never pass passwords or tokens here.
func (s *Service) audit(ctx context.Context, actor, action, target, outcome string, extra ...any) {
	platform.Audit(ctx, actor, action, target, outcome, extra...)
}

// BootstrapAdmin creates or promotes the admin named by AUTH_ADMIN_EMAIL.
func (s *Service) BootstrapAdmin(ctx context.Context, email, password string) error {
	email, ok := normEmail(email)
	if !ok || len(password) < 8 {
		return errors.New("AUTH_ADMIN_EMAIL must be an email and AUTH_ADMIN_PASSWORD at least 8 characters")
	}
	_, err := s.CreateUser(ctx, email, password, "Administrator", platform.RoleAdmin)
	var p *platform.Problem
	if errors.As(err, &p) && p.Code == "email_taken" {
		_, err = s.db.Exec(ctx, `UPDATE users SET role='admin' WHERE email=$1`, email)
	}
	if err == nil {
		s.audit(ctx, "bootstrap", "role_change", email, "success", "role", "admin")
	}
	return err
}

// Run is `shopd auth`.
func Run(ctx context.Context, cfg platform.Config) error {
	tel, err := platform.SetupTelemetry(ctx, cfg, nil)
	if err != nil {
		return err
	}
	db, err := platform.OpenDB(ctx, cfg.DatabaseURL, "auth", Migrations())
	if err != nil {
		return err
	}
	defer db.Close()
	var key ed25519.PrivateKey
	if f := platform.Env("AUTH_SIGNING_KEY_FILE", ""); f != "" {
		if key, err = LoadSigningKey(f); err != nil {
			return err
		}
	} else {
		slog.Warn("AUTH_SIGNING_KEY_FILE is not set: using an ephemeral signing key; tokens will not survive a restart and replicas will not agree")
		if _, key, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return err
		}
	}
	ttl, err := platform.EnvDuration("AUTH_ACCESS_TTL", 15*time.Minute)
	if err != nil {
		return err
	}
	svc := New(db, NewIssuer(key, cfg.AuthIssuer, cfg.AuthAudience, ttl))
	// Either alone is a mistake that BootstrapAdmin names.
	if e, pw := platform.Env("AUTH_ADMIN_EMAIL", ""), platform.Env("AUTH_ADMIN_PASSWORD", ""); e != "" || pw != "" {
		if err := svc.BootstrapAdmin(ctx, e, pw); err != nil {
			return err
		}
	}
	return platform.Serve(ctx, cfg, tel, svc.Routes(), platform.PingCheck(db))
}
