package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Problem is an RFC 9457 problem document returned by a backend, or made up
// by the storefront when a backend could not be reached.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
	Code     string `json:"code"`
	Errors   []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
	TraceID string `json:"trace_id"`
	// Unreachable is set when no answer came (connection refused, timeout).
	Unreachable bool   `json:"-"`
	Service     string `json:"-"`
}

func (p *Problem) Error() string {
	if p.Unreachable {
		return p.Service + " unreachable: " + p.Detail
	}
	return fmt.Sprintf("%s: %d %s: %s", p.Service, p.Status, p.Title, p.Detail)
}

// asProblem returns the problem in err, if any.
func asProblem(err error) (*Problem, bool) {
	var p *Problem
	if errors.As(err, &p) {
		return p, true
	}
	return nil, false
}

const (
	maxBackendBody = 1 << 20
	backendTimeout = 10 * time.Second
)

// backend calls one backend service over HTTP.
type backend struct {
	name string
	base string // e.g. http://127.0.0.1:8081, no trailing slash
	hc   *http.Client
}

// do sends a JSON request and decodes a JSON answer into out (may be nil).
// Non-2xx answers become *Problem.
func (b *backend) do(ctx context.Context, method, path, token string, hdr http.Header, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, backendTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return &Problem{Service: b.name, Unreachable: true, Status: http.StatusBadGateway, Detail: err.Error()}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBackendBody))
	if err != nil {
		return &Problem{Service: b.name, Unreachable: true, Status: http.StatusBadGateway, Detail: err.Error()}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		p := &Problem{Service: b.name}
		_ = json.Unmarshal(data, p)
		p.Status = resp.StatusCode
		if p.Title == "" {
			p.Title = http.StatusText(resp.StatusCode)
		}
		return p
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &Problem{Service: b.name, Status: http.StatusBadGateway, Title: "Bad answer", Detail: "undecodable answer: " + err.Error()}
	}
	return nil
}

func escapePath(s string) string { return url.PathEscape(s) }

func trimBase(s string) string { return strings.TrimRight(strings.TrimSpace(s), "/") }
