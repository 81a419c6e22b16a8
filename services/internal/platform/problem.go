package platform

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Problem is an RFC 9457 problem detail. Every error response of every
// service is one of these, with Content-Type application/problem+json.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Code is a stable machine-readable reason, e.g. "out_of_stock", "card_declined".
	Code string `json:"code,omitempty"`
	// Errors lists field validation failures.
	Errors  []FieldError `json:"errors,omitempty"`
	TraceID string       `json:"trace_id,omitempty"`
}

// FieldError is one invalid request field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
	}
	return fmt.Sprintf("%d %s", p.Status, p.Title)
}

// NewProblem builds a problem whose type is about:blank and title the status text.
func NewProblem(status int, code, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: detail}
}

// ValidationProblem is a 422 listing the invalid fields.
func ValidationProblem(errs ...FieldError) *Problem {
	p := NewProblem(http.StatusUnprocessableEntity, "validation_failed", "the request has invalid fields")
	p.Errors = errs
	return p
}

// WriteProblem writes p (or a 500 for any other error) as problem JSON. A
// non-Problem error is logged and hidden from the client.
func WriteProblem(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	if !errors.As(err, &p) {
		slog.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		p = NewProblem(http.StatusInternalServerError, "internal", "")
	}
	cp := *p
	cp.Instance = r.URL.Path
	if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
		cp.TraceID = sc.TraceID().String()
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(cp.Status)
	_ = json.NewEncoder(w).Encode(&cp)
}

// WriteJSON writes v with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// MaxBodyBytes is the request body limit for JSON APIs.
const MaxBodyBytes = 64 << 10

// DecodeJSON strictly decodes one JSON object from the body: unknown fields,
// trailing data, a wrong content type or more than MaxBodyBytes are 4xx problems.
func DecodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return NewProblem(http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json")
	}
	return DecodeJSONReader(io.LimitReader(r.Body, MaxBodyBytes+1), v)
}

// DecodeJSONReader is DecodeJSON without the HTTP parts (fuzzed directly).
func DecodeJSONReader(body io.Reader, v any) error {
	lr := &countingReader{r: body}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case lr.n > MaxBodyBytes || errors.As(err, &mbe):
			return NewProblem(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body exceeds %d bytes", MaxBodyBytes))
		case errors.Is(err, io.EOF):
			return NewProblem(http.StatusBadRequest, "malformed_json", "the body is empty")
		default:
			return NewProblem(http.StatusBadRequest, "malformed_json", jsonErrorDetail(err))
		}
	}
	if dec.More() {
		return NewProblem(http.StatusBadRequest, "malformed_json", "the body must hold a single JSON object")
	}
	if lr.n > MaxBodyBytes {
		return NewProblem(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body exceeds %d bytes", MaxBodyBytes))
	}
	return nil
}

func jsonErrorDetail(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
