package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// Issuer signs access tokens with an Ed25519 key.
type Issuer struct {
	Key              ed25519.PrivateKey
	Kid              string
	Issuer, Audience string
	TTL              time.Duration
	Now              func() time.Time
}

// NewIssuer derives the key ID from the public key.
func NewIssuer(key ed25519.PrivateKey, issuer, audience string, ttl time.Duration) *Issuer {
	sum := sha256.Sum256(key.Public().(ed25519.PublicKey))
	return &Issuer{Key: key, Kid: base64.RawURLEncoding.EncodeToString(sum[:12]), Issuer: issuer, Audience: audience, TTL: ttl, Now: time.Now}
}

// Issue returns a signed access token.
func (i *Issuer) Issue(userID, email, role string) (string, error) {
	now := i.Now()
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	c := platform.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: userID, Issuer: i.Issuer, Audience: jwt.ClaimStrings{i.Audience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(i.TTL)), ID: base64.RawURLEncoding.EncodeToString(jti),
		},
		Email: email, Role: role,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = i.Kid
	return t.SignedString(i.Key)
}

// JWKS is the public key set.
func (i *Issuer) JWKS() platform.JWKS {
	return platform.JWKS{Keys: []platform.JWK{platform.NewJWK(i.Kid, i.Key.Public().(ed25519.PublicKey))}}
}

// Verifier checks tokens of this issuer without a network round trip.
func (i *Issuer) Verifier() *platform.Verifier {
	return platform.NewStaticVerifier(map[string]ed25519.PublicKey{i.Kid: i.Key.Public().(ed25519.PublicKey)}, i.Issuer, i.Audience)
}

// LoadSigningKey reads a PEM PKCS#8 Ed25519 private key.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("AUTH_SIGNING_KEY_FILE: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("AUTH_SIGNING_KEY_FILE: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("AUTH_SIGNING_KEY_FILE: want an Ed25519 key, got %T", k)
	}
	return ek, nil
}

// newRefreshToken returns an opaque token and the hash that is stored.
func newRefreshToken() (string, []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, hashToken(tok)
}

func hashToken(tok string) []byte {
	s := sha256.Sum256([]byte(tok))
	return s[:]
}
