package platform

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesVariablesNothingReads: a variable of shopd's own
// (AUTH_, CATALOG_, ORDERS_, PAYMENT_, FRONTEND_) that the service never
// read is a misspelling, or meant for another service, or from a newer
// operator: shopd refuses to serve and names it, rather than run without
// the setting (FRONTEND_SECURE_COOKIE would leave the cookies without
// Secure). Other variables (PATH, PG*, OTEL_*) are not shopd's to judge.
func TestServeRefusesVariablesNothingReads(t *testing.T) {
	t.Setenv("FRONTEND_SECURE_COOKIE", "true")
	t.Setenv("PAYMENT_FAULT_LATENCY", "1s")
	t.Setenv("SOMETHING_ELSE", "x")
	cfg, err := LoadConfig("test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = Serve(ctx, cfg, nil, http.NewServeMux())
	if err == nil {
		t.Fatal("Serve ran with variables nothing read")
	}
	for _, want := range []string{"FRONTEND_SECURE_COOKIE", "PAYMENT_FAULT_LATENCY", "shopd test"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "SOMETHING_ELSE") {
		t.Errorf("error %q names a variable that is not shopd's", err)
	}
}

// TestServingLogNamesTheVariablesRead: the "serving" line lists the names
// (never the values) of the set variables the service read, so whoever
// deploys it (and the operator's contract test) can tell a variable that
// reached shopd from one it ignored.
func TestServingLogNamesTheVariablesRead(t *testing.T) {
	t.Setenv("AUTH_URL", "http://auth.example:8080")
	t.Setenv("PAYMENT_FAULT_LATENCY", "250ms")
	t.Setenv("SOMETHING_ELSE", "x")
	cfg, err := LoadConfig("test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnvDuration("PAYMENT_FAULT_LATENCY", 0); err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	var logs bytes.Buffer
	tel, err := SetupTelemetry(t.Context(), cfg, &TelemetryOptions{LogOutput: &syncWriter{w: &logs}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, tel, http.NewServeMux()) }()
	var env []string
	for range 100 { // bounded: the line comes before the servers start
		env = servingEnv(t, &logs)
		if env != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if !slices.Contains(env, "AUTH_URL") || !slices.Contains(env, "PAYMENT_FAULT_LATENCY") {
		t.Errorf("serving line env = %v, want AUTH_URL and PAYMENT_FAULT_LATENCY", env)
	}
	if slices.Contains(env, "SOMETHING_ELSE") || slices.Contains(env, "CATALOG_URL") {
		t.Errorf("serving line env = %v lists a variable not read, or not set", env)
	}
	if strings.Contains(logs.String(), "auth.example") || strings.Contains(logs.String(), "250ms") {
		t.Error("the serving line shows values")
	}
}

// servingEnv returns the env of the "serving" line in logs, or nil.
func servingEnv(t *testing.T, logs *bytes.Buffer) []string {
	t.Helper()
	s := bufio.NewScanner(strings.NewReader(logs.String()))
	for s.Scan() {
		var line struct {
			Msg string   `json:"msg"`
			Env []string `json:"env"`
		}
		if json.Unmarshal(s.Bytes(), &line) == nil && line.Msg == "serving" {
			return append([]string{}, line.Env...)
		}
	}
	return nil
}
