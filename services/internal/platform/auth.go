package platform

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// Claims are the access-token claims issued by auth. Subject is the user ID.
type Claims struct {
	jwt.RegisteredClaims
	Email string `json:"email"`
	Role  string `json:"role"`
}

// JWK is one Ed25519 public key in a JWKS (RFC 8037).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS is the document served at /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// NewJWK encodes an Ed25519 public key.
func NewJWK(kid string, pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: kid, Alg: "EdDSA", Use: "sig"}
}

// Verifier checks EdDSA access tokens against a key set.
type Verifier struct {
	Issuer, Audience string

	mu        sync.Mutex // guards the cache below
	keys      map[string]ed25519.PublicKey
	fetchedAt time.Time
	attemptAt time.Time
	jwksURL   string
	client    *http.Client
	now       func() time.Time
}

// NewVerifier verifies against the JWKS at jwksURL, cached for five minutes
// and refetched (at most every 10s) when a token names an unknown key.
func NewVerifier(jwksURL, issuer, audience string) *Verifier {
	return &Verifier{Issuer: issuer, Audience: audience, jwksURL: jwksURL, client: NewHTTPClient(5 * time.Second), now: time.Now}
}

// NewStaticVerifier verifies against fixed keys (the auth service itself, tests).
func NewStaticVerifier(keys map[string]ed25519.PublicKey, issuer, audience string) *Verifier {
	return &Verifier{Issuer: issuer, Audience: audience, keys: keys, now: time.Now}
}

// Token problems.
var (
	ErrNoToken      = NewProblem(http.StatusUnauthorized, "missing_token", "a bearer token is required")
	ErrInvalidToken = NewProblem(http.StatusUnauthorized, "invalid_token", "the token is invalid")
	ErrExpiredToken = NewProblem(http.StatusUnauthorized, "token_expired", "the token has expired")
	ErrForbidden    = NewProblem(http.StatusForbidden, "forbidden", "your role may not do this")
)

// VerifyToken parses and checks signature, expiry, issuer and audience.
func (v *Verifier) VerifyToken(ctx context.Context, raw string) (*Claims, error) {
	claims := &Claims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return v.key(ctx, kid)
	},
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithIssuer(v.Issuer),
		jwt.WithAudience(v.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.now),
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, ErrExpiredToken
		}
		return nil, ErrInvalidToken
	}
	if claims.Subject == "" || (claims.Role != RoleCustomer && claims.Role != RoleAdmin) {
		return nil, ErrInvalidToken
	}
	return claims, nil
}

func (v *Verifier) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k, cached := v.keys[kid]
	if v.jwksURL == "" {
		if !cached {
			return nil, errors.New("unknown key")
		}
		return k, nil
	}
	now := v.now()
	fresh := now.Sub(v.fetchedAt) < 5*time.Minute
	// Refetch when the cache is old or the kid is new (a key rotation), but
	// try at most every 10s so that an unreachable auth service does not
	// stall every request.
	if (!cached || !fresh) && now.Sub(v.attemptAt) > 10*time.Second {
		v.attemptAt = now
		keys, err := fetchJWKS(ctx, v.client, v.jwksURL)
		if err == nil {
			v.keys, v.fetchedAt = keys, now
			k, cached = v.keys[kid]
		} else {
			slog.WarnContext(ctx, "fetching JWKS failed; using cached keys", "url", v.jwksURL, "err", err)
		}
	}
	if !cached {
		return nil, errors.New("unknown key")
	}
	return k, nil // a stale key still verifies while auth is unreachable
}

func fetchJWKS(ctx context.Context, c *http.Client, url string) (map[string]ed25519.PublicKey, error) {
	var set JWKS
	if err := CallJSON(ctx, c, http.MethodGet, url, nil, nil, &set); err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(b) != ed25519.PublicKeySize {
			continue
		}
		keys[k.Kid] = ed25519.PublicKey(b)
	}
	return keys, nil
}

type ctxKey int

const (
	claimsKey ctxKey = iota
	tokenKey
)

// WithToken stores the caller's raw bearer token; NewHTTPClient forwards it.
func WithToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenKey, token)
}

// TokenFrom returns the token stored by WithToken or the auth middleware.
func TokenFrom(ctx context.Context) string {
	s, _ := ctx.Value(tokenKey).(string)
	return s
}

// ClaimsFrom returns the verified claims put in the context by Require.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey).(*Claims)
	return c, ok
}

// WithClaims stores claims (used by Require and tests).
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey, c)
}

// BearerToken extracts the token from "Authorization: Bearer ...".
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Require is middleware that demands a valid token and, when roles are
// given, one of them. It stores the claims and the raw token in the context.
func (v *Verifier) Require(next http.HandlerFunc, roles ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw := BearerToken(r)
		if raw == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shop"`)
			WriteProblem(w, r, ErrNoToken)
			return
		}
		c, err := v.VerifyToken(r.Context(), raw)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shop", error="invalid_token"`)
			WriteProblem(w, r, err)
			return
		}
		if len(roles) > 0 && !slices.Contains(roles, c.Role) {
			WriteProblem(w, r, ErrForbidden)
			return
		}
		ctx := WithToken(WithClaims(r.Context(), c), raw)
		next(w, r.WithContext(ctx))
	}
}
