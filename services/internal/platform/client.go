package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// NewHTTPClient returns a client for calls to peer services: each request
// gets a client span and W3C trace-context/baggage headers (otelhttp), the
// caller's bearer token from the context (WithToken) unless the request sets
// one, and the overall timeout.
func NewHTTPClient(timeout time.Duration) *http.Client {
	base := &http.Transport{
		Proxy:                 nil, // peers are in-cluster; never route them through a proxy
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: otelhttp.NewTransport(bearerTransport{base}),
	}
}

type bearerTransport struct{ base http.RoundTripper }

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if tok := TokenFrom(r.Context()); tok != "" && r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return t.base.RoundTrip(r)
}

// CallJSON sends in (if not nil) as JSON and decodes a 2xx response into out
// (if not nil). A non-2xx answer is returned as a *Problem carrying the
// peer's status, code and detail; transport failures are plain errors.
func CallJSON(ctx context.Context, c *http.Client, method, url string, hdr http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		p := &Problem{}
		if !strings.Contains(resp.Header.Get("Content-Type"), "json") || json.Unmarshal(data, p) != nil || p.Status == 0 {
			p = NewProblem(resp.StatusCode, "upstream_error", fmt.Sprintf("%s %s: %s", method, url, resp.Status))
		}
		p.Status = resp.StatusCode
		return p
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, url, err)
		}
	}
	return nil
}
