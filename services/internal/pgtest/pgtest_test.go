package pgtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestFreshDatabases(t *testing.T) {
	for i := 0; i < 2; i++ {
		url := NewDatabase(t)
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(t.Context(), "CREATE TABLE x (id int)"); err != nil {
			t.Fatalf("database %d not fresh: %v", i, err)
		}
	}
}

func TestMissingBinariesFailClearly(t *testing.T) {
	t.Setenv("PGTEST_BINDIR", t.TempDir())
	defer func(d string) { BinDir = d }(BinDir)
	_, err := Start()
	if err == nil || !strings.Contains(err.Error(), "postgresql-15") {
		t.Fatalf("want a clear error naming postgresql-15, got %v", err)
	}
}

// TestTLSServer: a TLS server encrypts a verify-full connection with its CA.
func TestTLSServer(t *testing.T) {
	s, err := StartWith(Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	url := fmt.Sprintf("postgres://postgres@%s:%d/postgres?sslmode=verify-full&sslrootcert=%s", TLSHost, s.Port, s.CAFile)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ssl bool
	if err := conn.QueryRow(t.Context(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Errorf("ssl = %v (%v), want true", ssl, err)
	}
}
