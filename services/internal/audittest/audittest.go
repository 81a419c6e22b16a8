// Package audittest reads the audit records a service logs, for the
// services' tests: one capture, one parser and one field check, so that every
// service's audit test holds its records to the same shape.
package audittest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"sync"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// Capture installs the services' real telemetry for service (the log handler
// that adds trace_id) with the log going to a buffer, and returns a function
// that reads the audit records logged so far. The previous default logger is
// restored and the telemetry shut down when the test ends.
func Capture(t *testing.T, service string) func() []map[string]any {
	t.Helper()
	cfg, err := platform.LoadConfig(service)
	if err != nil {
		t.Fatal(err)
	}
	w := &lockedBuffer{}
	prev := slog.Default()
	tel, err := platform.SetupTelemetry(t.Context(), cfg, &platform.TelemetryOptions{LogOutput: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tel.Shutdown(context.Background())
		slog.SetDefault(prev)
	})
	return func() []map[string]any { return Records(w.bytes()) }
}

// Records returns the audit records ("audit": true) among JSON log lines.
func Records(logs []byte) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["audit"] == true {
			out = append(out, rec)
		}
	}
	return out
}

var traceID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// CheckFields reports a record that lacks one of platform.AuditFields, or
// (withTrace) whose trace_id is not a valid, non-zero trace id.
func CheckFields(t *testing.T, rec map[string]any, withTrace bool) {
	t.Helper()
	for _, f := range platform.AuditFields {
		if f == "trace_id" && !withTrace {
			continue
		}
		if s, _ := rec[f].(string); s == "" {
			t.Errorf("audit record without %s: %v", f, rec)
		}
	}
	if id, _ := rec["trace_id"].(string); withTrace && (!traceID.MatchString(id) || id == "00000000000000000000000000000000") {
		t.Errorf("audit record with trace_id %q: %v", id, rec)
	}
}

// Key is "actor action target outcome", plus " reason" when the record has one.
func Key(rec map[string]any) string {
	s := func(k string) string { v, _ := rec[k].(string); return v }
	key := s("actor") + " " + s("action") + " " + s("target") + " " + s("outcome")
	if r := s("reason"); r != "" {
		key += " " + r
	}
	return key
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
