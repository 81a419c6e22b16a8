package platform

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopplatform/shop-operator/services/internal/pgtest"
)

// TestOpenDBOverVerifiedTLS connects the way a service reaches a managed
// database in the cluster: no DATABASE_URL, the PG* variables with
// PGSSLMODE=verify-full and PGSSLROOTCERT naming the database's CA. The
// session must be encrypted; a CA that did not sign the server's
// certificate, or a host name the certificate does not name, must be
// refused before any query.
func TestOpenDBOverVerifiedTLS(t *testing.T) {
	s, err := pgtest.StartWith(pgtest.Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	env := func(host, rootCert string) {
		t.Setenv("PGHOST", host)
		t.Setenv("PGPORT", strconv.Itoa(s.Port))
		t.Setenv("PGUSER", "postgres")
		t.Setenv("PGDATABASE", "postgres")
		t.Setenv("PGSSLMODE", "verify-full")
		t.Setenv("PGSSLROOTCERT", rootCert)
	}

	env(pgtest.TLSHost, s.CAFile)
	pool, err := OpenDB(t.Context(), "", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var ssl bool
	var version string
	err = pool.QueryRow(t.Context(), "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &version)
	if err != nil || !ssl {
		t.Fatalf("ssl = %v (%v), want an encrypted session", ssl, err)
	}
	t.Logf("session over %s", version)

	// Another CA: verification fails (pgx.Connect: OpenDB would keep retrying
	// what can never succeed until its connect timeout).
	otherCA, _, _, err := pgtest.Certificates(pgtest.TLSHost)
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(wrong, otherCA, 0o644); err != nil {
		t.Fatal(err)
	}
	env(pgtest.TLSHost, wrong)
	refused(t, "a CA that did not sign the server's certificate", "unknown authority")

	// The right CA and the right server, reached by a name the certificate
	// does not carry (localhost is 127.0.0.1 too).
	env("localhost", s.CAFile)
	refused(t, "a host name the certificate does not name", "localhost")
}

func refused(t *testing.T, what, want string) {
	t.Helper()
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err == nil {
		conn.Close(context.Background())
		t.Fatalf("connected with %s", what)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %q does not mention %q", what, err, want)
	}
	t.Logf("%s: refused: %v", what, err)
}

// BenchmarkConnect measures opening one connection and running one query,
// plain and over verified TLS (what a pool pays per new connection);
// BenchmarkQuery one query on an open connection (what every request pays).
func BenchmarkConnect(b *testing.B) { benchmarkTLS(b, true) }

func BenchmarkQuery(b *testing.B) { benchmarkTLS(b, false) }

func benchmarkTLS(b *testing.B, reconnect bool) {
	s, err := pgtest.StartWith(pgtest.Options{TLS: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	base := "postgres://postgres@" + pgtest.TLSHost + ":" + strconv.Itoa(s.Port) + "/postgres"
	for _, mode := range []string{"sslmode=disable", "sslmode=verify-full&sslrootcert=" + s.CAFile} {
		b.Run(strings.SplitN(strings.TrimPrefix(mode, "sslmode="), "&", 2)[0], func(b *testing.B) {
			var conn *pgx.Conn
			for b.Loop() {
				if conn == nil || reconnect {
					if conn, err = pgx.Connect(context.Background(), base+"?"+mode); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := conn.Exec(context.Background(), "SELECT 1"); err != nil {
					b.Fatal(err)
				}
				if reconnect {
					conn.Close(context.Background())
				}
			}
			if !reconnect {
				conn.Close(context.Background())
			}
		})
	}
}
