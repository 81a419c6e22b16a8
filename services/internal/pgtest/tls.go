package pgtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSHost is the host a client of a TLS server connects to: the server's
// certificate is valid for it alone (not for localhost).
const TLSHost = "127.0.0.1"

// Certificates generates an ECDSA P-256 CA and a server certificate signed
// by it for hosts (DNS names or IP addresses), valid for a day, as the
// operator does for a managed database (internal/secrets in the root
// module, which this module cannot import). It returns PEM: CA certificate,
// server certificate, server key (PKCS #8).
func Certificates(hosts ...string) (caPEM, certPEM, keyPEM []byte, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "pgtest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano() + 1), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeTLS writes a server certificate and key into dir/tls and the CA into
// dir/ca.crt, returning Postgres' ssl settings. Run as root, the key is
// written as the kubelet writes a Secret volume with an fsGroup: owned by
// root, group postgres, mode 0640, which Postgres accepts only because root
// owns it. Otherwise it is the caller's, mode 0600.
func writeTLS(dir string, asRoot bool, gid int) (caFile string, settings []string, err error) {
	caPEM, certPEM, keyPEM, err := Certificates(TLSHost)
	if err != nil {
		return "", nil, err
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.Mkdir(tlsDir, 0o755); err != nil {
		return "", nil, err
	}
	certFile, keyFile := filepath.Join(tlsDir, "tls.crt"), filepath.Join(tlsDir, "tls.key")
	caFile = filepath.Join(dir, "ca.crt")
	keyMode := os.FileMode(0o600)
	if asRoot {
		keyMode = 0o640
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{caFile, caPEM, 0o644}, {certFile, certPEM, 0o644}, {keyFile, keyPEM, keyMode}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return "", nil, err
		}
		if asRoot {
			if err := os.Chown(f.path, 0, gid); err != nil {
				return "", nil, err
			}
		}
		// Explicitly: WriteFile's mode is filtered by the umask.
		if err := os.Chmod(f.path, f.mode); err != nil {
			return "", nil, fmt.Errorf("chmod %s: %w", f.path, err)
		}
	}
	return caFile, []string{"-c", "ssl=on", "-c", "ssl_cert_file=" + certFile, "-c", "ssl_key_file=" + keyFile}, nil
}
