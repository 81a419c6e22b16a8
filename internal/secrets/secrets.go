// Package secrets decides which Secrets the operator generates for a Shop and
// how: database passwords, each managed database's CA and server certificate
// (tls.go), the token signing key, the cookie secret. A generated Secret is
// created once and never regenerated: losing a database password or the
// token signing key would lock the services out of their data or log every
// shopper out. The controller reads the values that
// exist and generates only what is missing; builders then render the Secrets
// from render.Input.Generated, so they stay pure.
package secrets

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Keys of generated Secrets.
const (
	PasswordKey          = "password"
	SuperuserPasswordKey = "superuser-password"
	SigningKeyKey        = "signing-key.pem"
	CookieSecretKey      = "cookie-secret"
)

// Keys of a database connection Secret. A managed database's credentials
// Secret and a user's external database Secret have the same shape, so the
// services read either the same way. An external database's Secret may also
// hold CACertKey (ca.crt): the CA its server certificate is verified with.
const (
	HostKey    = "host"
	PortKey    = "port"
	DBNameKey  = "dbname"
	UserKey    = "user"
	SSLModeKey = "sslmode" // optional
)

// ExternalDatabaseKeys must all be present in an external database's Secret
// (PasswordKey included; SSLModeKey and CACertKey are optional, and only
// the pods read them).
var ExternalDatabaseKeys = []string{HostKey, PortKey, DBNameKey, UserKey, PasswordKey}

// Keys of the user's admin Secret (spec.admin.secretName): the email and
// password auth bootstraps its administrator with.
const AdminEmailKey = "email"

// AdminKeys must all be present in the admin Secret.
var AdminKeys = []string{AdminEmailKey, PasswordKey}

// CookieSecretName is the generated Secret with the frontend's cookie
// signing secret (key cookie-secret): regenerating it would log every shopper
// out and empty their carts.
func CookieSecretName(in render.Input) string { return in.Name("frontend-cookie") }

// Spec is one generated Secret: its name and the keys it must hold, each
// generated on its own, or a Bundle of keys generated together.
type Spec struct {
	Name   string
	Keys   map[string]func() ([]byte, error)
	Bundle *Bundle
}

// Bundle is a set of keys that are valid only together (a CA, a certificate
// it signed and that certificate's key): they are kept while all are
// present, and generated anew, all at once, when any is missing.
type Bundle struct {
	Keys     []string
	Generate func() (map[string][]byte, error)
}

// For returns the Secrets a Shop needs generated.
func For(in render.Input) []Spec {
	var specs []Spec
	for _, svc := range render.Databases {
		if in.ManagedDatabase(svc) != nil {
			specs = append(specs, Spec{Name: in.DatabaseSecretName(svc), Keys: map[string]func() ([]byte, error){
				PasswordKey:          password,
				SuperuserPasswordKey: password,
			}})
			specs = append(specs, Spec{Name: DatabaseTLSSecretName(in, svc), Bundle: databaseTLS(DatabaseHosts(in, svc))})
		}
	}
	specs = append(specs, Spec{Name: in.SigningKeySecretName(), Keys: map[string]func() ([]byte, error){
		SigningKeyKey: signingKey,
	}})
	specs = append(specs, Spec{Name: CookieSecretName(in), Keys: map[string]func() ([]byte, error){
		CookieSecretKey: password,
	}})
	return specs
}

// Fill completes existing with generated values for every missing key, and
// returns the values by Secret name. Existing values are never replaced.
func Fill(specs []Spec, existing map[string]map[string][]byte) (map[string]map[string][]byte, error) {
	out := make(map[string]map[string][]byte, len(specs))
	for _, s := range specs {
		data := map[string][]byte{}
		for k, gen := range s.Keys {
			if v, ok := existing[s.Name][k]; ok && len(v) > 0 {
				data[k] = v
				continue
			}
			v, err := gen()
			if err != nil {
				return nil, err
			}
			data[k] = v
		}
		if s.Bundle != nil {
			if err := fillBundle(data, s.Bundle, existing[s.Name]); err != nil {
				return nil, fmt.Errorf("generating Secret %s: %w", s.Name, err)
			}
		}
		out[s.Name] = data
	}
	return out, nil
}

func fillBundle(data map[string][]byte, b *Bundle, existing map[string][]byte) error {
	complete := true
	for _, k := range b.Keys {
		complete = complete && len(existing[k]) > 0
	}
	if complete {
		for _, k := range b.Keys {
			data[k] = existing[k]
		}
		return nil
	}
	gen, err := b.Generate()
	if err != nil {
		return err
	}
	for _, k := range b.Keys {
		data[k] = gen[k]
	}
	return nil
}

// Placeholder stands in for every generated value that shopctl prints.
const Placeholder = "<generated>"

// Placeholders returns stable stand-ins for every generated value, for
// offline rendering where nothing is generated and nothing secret is printed.
func Placeholders(specs []Spec) map[string]map[string][]byte {
	out := make(map[string]map[string][]byte, len(specs))
	for _, s := range specs {
		out[s.Name] = map[string][]byte{}
		for k := range s.Keys {
			out[s.Name][k] = []byte(Placeholder)
		}
		if s.Bundle != nil {
			for _, k := range s.Bundle.Keys {
				out[s.Name][k] = []byte(Placeholder)
			}
		}
	}
	return out
}

// AsPlaceholders returns the specs with every generator making Placeholder:
// Fill with them keeps the values that exist and makes up none.
func AsPlaceholders(specs []Spec) []Spec {
	placeholder := func() ([]byte, error) { return []byte(Placeholder), nil }
	out := make([]Spec, len(specs))
	for i, s := range specs {
		out[i] = Spec{Name: s.Name}
		if s.Keys != nil {
			out[i].Keys = map[string]func() ([]byte, error){}
			for k := range s.Keys {
				out[i].Keys[k] = placeholder
			}
		}
		if s.Bundle != nil {
			b := &Bundle{Keys: s.Bundle.Keys}
			b.Generate = func() (map[string][]byte, error) {
				m := map[string][]byte{}
				for _, k := range b.Keys {
					m[k] = []byte(Placeholder)
				}
				return m, nil
			}
			out[i].Bundle = b
		}
	}
	return out
}

// password returns 32 random bytes as URL-safe base64 (safe in connection strings).
func password() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return []byte(base64.RawURLEncoding.EncodeToString(b)), nil
}

func signingKey() ([]byte, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
