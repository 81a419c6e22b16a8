package secrets_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// TestDatabaseTLS fills the Secrets of a new Shop and checks each database's
// certificate as a client would: it chains to the Secret's own CA for every
// name of the database's Service, its key matches, and both are P-256 and
// live ten years.
func TestDatabaseTLS(t *testing.T) {
	in := rendertest.Input(shopv1.ShopSpec{})
	got, err := secrets.Fill(secrets.For(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	cas := map[string]bool{}
	for _, svc := range render.Databases {
		data := got[secrets.DatabaseTLSSecretName(in, svc)]
		if _, err := tls.X509KeyPair(data[secrets.TLSCertKey], data[secrets.TLSKeyKey]); err != nil {
			t.Fatalf("%s: certificate and key do not match: %v", svc, err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(data[secrets.CACertKey]) {
			t.Fatalf("%s: no CA certificate", svc)
		}
		leaf := parse(t, data[secrets.TLSCertKey])
		ca := parse(t, data[secrets.CACertKey])
		hosts := secrets.DatabaseHosts(in, svc)
		if hosts[0] != in.DatabaseName(svc) || hosts[3] != "demo-"+svc+"-db.shop.svc.cluster.local" {
			t.Errorf("%s: hosts %v", svc, hosts)
		}
		for _, host := range hosts {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("%s: not valid for %s: %v", svc, host, err)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "demo-payment", Roots: roots}); err == nil {
			t.Errorf("%s: valid for a name that is not the database's", svc)
		}
		for _, c := range []*x509.Certificate{ca, leaf} {
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("%s: %s key is %T, want ECDSA P-256", svc, c.Subject.CommonName, c.PublicKey)
			}
			if life := c.NotAfter.Sub(time.Now()); life < secrets.CertificateLifetime-time.Hour || life > secrets.CertificateLifetime {
				t.Errorf("%s: %s valid for %s more", svc, c.Subject.CommonName, life)
			}
		}
		if !ca.IsCA || leaf.IsCA {
			t.Errorf("%s: CA flags ca=%v leaf=%v", svc, ca.IsCA, leaf.IsCA)
		}
		cas[string(data[secrets.CACertKey])] = true
	}
	if len(cas) != len(render.Databases) {
		t.Errorf("%d CAs for %d databases: each database has its own", len(cas), len(render.Databases))
	}
}

// TestDatabaseTLSIsKeptWhole keeps a complete TLS Secret as it is, and
// regenerates all of it when one key is missing: a certificate without the
// key it was issued for (or a CA that did not sign it) is worth nothing.
func TestDatabaseTLSIsKeptWhole(t *testing.T) {
	in := rendertest.Input(shopv1.ShopSpec{})
	specs := secrets.For(in)
	name := secrets.DatabaseTLSSecretName(in, render.Orders)
	first, err := secrets.Fill(specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := secrets.Fill(specs, first)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{secrets.CACertKey, secrets.TLSCertKey, secrets.TLSKeyKey} {
		if !bytes.Equal(first[name][k], second[name][k]) {
			t.Errorf("%s changed on the second fill", k)
		}
	}
	partial := map[string]map[string][]byte{name: {secrets.CACertKey: first[name][secrets.CACertKey], secrets.TLSCertKey: first[name][secrets.TLSCertKey]}}
	third, err := secrets.Fill(specs, partial)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(third[name][secrets.CACertKey], first[name][secrets.CACertKey]) {
		t.Error("the CA was kept although the key was missing")
	}
	if _, err := tls.X509KeyPair(third[name][secrets.TLSCertKey], third[name][secrets.TLSKeyKey]); err != nil {
		t.Errorf("regenerated pair does not match: %v", err)
	}
}

func TestNoTLSForExternalDatabases(t *testing.T) {
	spec := shopv1.ShopSpec{}
	spec.Databases.Auth.External = &shopv1.ExternalDatabase{SecretName: "auth-pg"}
	in := rendertest.Input(spec)
	for _, s := range secrets.For(in) {
		if s.Name == secrets.DatabaseTLSSecretName(in, render.Auth) {
			t.Error("an external database gets a generated TLS Secret")
		}
	}
}

func parse(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// BenchmarkDatabaseTLS measures generating one database's CA and server
// certificate (done once per database, on the Shop's first reconcile).
func BenchmarkDatabaseTLS(b *testing.B) {
	hosts := []string{"demo-orders-db", "demo-orders-db.shop"}
	for b.Loop() {
		if _, _, _, err := secrets.ServerCertificate(hosts, time.Now(), secrets.CertificateLifetime); err != nil {
			b.Fatal(err)
		}
	}
}
