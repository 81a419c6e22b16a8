package secrets

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Keys of a database's TLS Secret (type kubernetes.io/tls, plus the CA that
// clients verify the server with).
const (
	TLSCertKey = "tls.crt"
	TLSKeyKey  = "tls.key"
	CACertKey  = "ca.crt"
)

// CertificateLifetime is how long a database's CA and server certificate
// are valid. Nothing renews them: ten years outlives any Shop we expect, and
// deleting the Secret rotates both (docs/operations.md).
const CertificateLifetime = 10 * 365 * 24 * time.Hour

// DatabaseTLSSecretName is the generated TLS Secret of a managed database.
func DatabaseTLSSecretName(in render.Input, svc string) string { return in.DatabaseName(svc) + "-tls" }

// DatabaseHosts are the names a managed database's certificate is valid for:
// every form of its Service's DNS name a client in the cluster may use.
func DatabaseHosts(in render.Input, svc string) []string {
	name, ns := in.DatabaseName(svc), in.Shop.Namespace
	return []string{name, name + "." + ns, name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local"}
}

// databaseTLS returns the bundle of a database's TLS Secret: a self-signed CA
// of its own (one per database, so a leaked key exposes one database only)
// and a server certificate for hosts signed by it.
func databaseTLS(hosts []string) *Bundle {
	return &Bundle{
		Keys: []string{CACertKey, TLSCertKey, TLSKeyKey},
		Generate: func() (map[string][]byte, error) {
			caPEM, certPEM, keyPEM, err := ServerCertificate(hosts, time.Now(), CertificateLifetime)
			if err != nil {
				return nil, err
			}
			return map[string][]byte{CACertKey: caPEM, TLSCertKey: certPEM, TLSKeyKey: keyPEM}, nil
		},
	}
}

// ServerCertificate generates an ECDSA P-256 CA and a server certificate for
// hosts signed by it, both valid from an hour before now (clock skew) for
// lifetime. It returns PEM: the CA certificate, the server certificate and
// the server's PKCS #8 private key.
func ServerCertificate(hosts []string, now time.Time, lifetime time.Duration) (caPEM, certPEM, keyPEM []byte, err error) {
	notBefore, notAfter := now.Add(-time.Hour), now.Add(lifetime)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: hosts[0] + " CA", Organization: []string{"shop-operator"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if ca.SerialNumber, err = serial(); err != nil {
		return nil, nil, nil, err
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, nil, nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		DNSNames:    hosts,
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if leaf.SerialNumber, err = serial(); err != nil {
		return nil, nil, nil, err
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// serial is a random 128-bit certificate serial number (RFC 5280: positive, at most 20 octets).
func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}
