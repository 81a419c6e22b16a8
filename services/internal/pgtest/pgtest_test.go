package pgtest

import (
	"context"
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
