package workloads_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
	"github.com/shopplatform/shop-operator/internal/pgtest"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// TestExternalDatabaseCAOnRealClients connects to a real Postgres with TLS
// as a service with an external database would: the env and the CA volume
// the builder renders, laid out as the kubelet does for a user's Secret
// with or without ca.crt. Both clients the product meets are used: pgx (the
// services, same version as services/go.mod) and libpq (psql, as the
// user's own tools). What must hold is libpq's documented meaning of a
// root certificate that may be missing:
//   - ca.crt given, verify-full: verified against it, connected over TLS;
//   - ca.crt given, require: verified against it too (verify-ca), so a
//     foreign CA is refused;
//   - no ca.crt, require: encrypted, not verified (as before this feature);
//   - no ca.crt, verify-full: refused (no root to verify with; pgx tries
//     the system roots, which do not hold this private CA).
func TestExternalDatabaseCAOnRealClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	caPEM, certPEM, keyPEM, err := secrets.ServerCertificate([]string{"localhost"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreignCA, _, _, err := secrets.ServerCertificate([]string{"localhost"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pg := startTLSPostgres(t, certPEM, keyPEM)

	spec := shopv1.ShopSpec{Environment: shopv1.Production}
	spec.Databases.Catalog.External = &shopv1.ExternalDatabase{SecretName: "catalog-pg"}
	objs, err := workloads.Build(rendertest.Input(spec))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.PodSpec
	for _, o := range objs {
		if d, ok := o.(*appsv1.Deployment); ok && d.Name == "demo-catalog" {
			pod = d.Spec.Template.Spec
		}
	}
	if len(pod.Containers) != 1 {
		t.Fatal("no catalog Deployment")
	}

	cases := []struct {
		name, sslmode string
		ca            []byte // ca.crt in the user's Secret, nil: no such key
		ok            bool
	}{
		{"own CA, verify-full", "verify-full", caPEM, true},
		{"own CA, require", "require", caPEM, true},
		{"foreign CA, require", "require", foreignCA, false},
		{"foreign CA, verify-full", "verify-full", foreignCA, false},
		{"no CA, require", "require", nil, true},
		{"no CA, verify-full", "verify-full", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			userSecret := map[string][]byte{
				secrets.HostKey: []byte("localhost"), secrets.PortKey: []byte(strconv.Itoa(pg.Port)),
				secrets.DBNameKey: []byte("postgres"), secrets.UserKey: []byte("postgres"),
				secrets.PasswordKey: []byte(pg.Password), secrets.SSLModeKey: []byte(c.sslmode),
			}
			if c.ca != nil {
				userSecret[secrets.CACertKey] = c.ca
			}
			env := podEnv(t, pod, "catalog-pg", userSecret)

			// pgx, as shopd: the PG* variables and HOME from the process env.
			for k, v := range env {
				t.Setenv(k, v)
			}
			cfg, err := pgconn.ParseConfig("")
			var ssl string
			if err == nil {
				cfg.ConnectTimeout = 5 * time.Second
				var conn *pgconn.PgConn
				if conn, err = pgconn.ConnectConfig(ctx, cfg); err == nil {
					rows, qerr := conn.Exec(ctx, "select ssl from pg_stat_ssl where pid = pg_backend_pid()").ReadAll()
					if err = qerr; err == nil {
						ssl = string(rows[0].Rows[0][0])
					}
					conn.Close(ctx)
				}
			}
			if c.ok && (err != nil || ssl != "t") {
				t.Errorf("pgx: ssl=%q, %v; want a TLS session", ssl, err)
			} else if !c.ok && (err == nil || !strings.Contains(err.Error(), "certificate")) {
				t.Errorf("pgx: %v; want refused for the server's certificate", err)
			}

			// libpq (psql) with the same environment.
			cmd := exec.CommandContext(ctx, filepath.Join(pg.Bin, "psql"), "-X", "-At", "-c", "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PGCONNECT_TIMEOUT=5"}
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			if got := strings.TrimSpace(string(out)); c.ok && (err != nil || got != "t") {
				t.Errorf("psql: %q, %v; want a TLS session", got, err)
			} else if !c.ok && (err == nil || !strings.Contains(got, "certificate")) {
				t.Errorf("psql: %q, %v; want refused for the server's certificate", got, err)
			}
		})
	}
}

// podEnv is the container's database environment as the kubelet makes it
// from the user's Secret: secret references resolved (an optional key that
// is missing leaves its variable unset), the Secret's volumes written under
// a temporary root with the items the Secret has (an optional volume skips
// the missing ones), and paths in values moved under that root.
func podEnv(t *testing.T, pod corev1.PodSpec, secretName string, data map[string][]byte) map[string]string {
	t.Helper()
	root := t.TempDir()
	c := pod.Containers[0]
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Secret == nil || v.Secret.SecretName != secretName {
				continue
			}
			dir := filepath.Join(root, m.MountPath)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, it := range v.Secret.Items {
				b, ok := data[it.Key]
				if !ok {
					if v.Secret.Optional == nil || !*v.Secret.Optional {
						t.Fatalf("volume %s needs key %s, which the Secret lacks: the pod would not start", v.Name, it.Key)
					}
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, it.Path), b, 0o444); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if !strings.HasPrefix(e.Name, "PG") && e.Name != "HOME" {
			continue
		}
		value := e.Value
		if ref := e.ValueFrom; ref != nil {
			if ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != secretName {
				t.Fatalf("%s: not from the external Secret: %v", e.Name, ref)
			}
			b, ok := data[ref.SecretKeyRef.Key]
			if !ok {
				continue
			}
			value = string(b)
		}
		if strings.HasPrefix(value, "/") {
			value = filepath.Join(root, value)
		}
		env[e.Name] = value
	}
	return env
}

// startTLSPostgres starts a throwaway Postgres on loopback with TLS on
// (certificate and key given) and password logins over TCP.
func startTLSPostgres(t *testing.T, certPEM, keyPEM []byte) *pgtest.Server {
	t.Helper()
	return pgtest.Start(t, "external-secret", func(dir string, uid, gid int) []string {
		for name, b := range map[string][]byte{"server.crt": certPEM, "server.key": keyPEM} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if uid >= 0 {
				if err := os.Chown(p, uid, gid); err != nil {
					t.Fatal(err)
				}
			}
		}
		return []string{"-c", "ssl=on", "-c", "ssl_cert_file=" + filepath.Join(dir, "server.crt"), "-c", "ssl_key_file=" + filepath.Join(dir, "server.key")}
	})
}
