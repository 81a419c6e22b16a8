package platform

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDecodeJSON: any body either decodes or is a 4xx problem; never a panic.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"a","n":1}`, ``, `{`, `[]`, `null`, `{"n":1e400}`, `{"name":"\ud800"}`, `{"a":1}`, `{"n":1} x`, strings.Repeat("[", 10000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v struct {
			Name string         `json:"name"`
			N    int            `json:"n"`
			M    map[string]any `json:"m"`
		}
		err := DecodeJSONReader(strings.NewReader(string(body)), &v)
		if err == nil {
			return
		}
		var p *Problem
		if !errors.As(err, &p) || p.Status < 400 || p.Status > 499 || p.Code == "" {
			t.Fatalf("error is not a 4xx problem: %v", err)
		}
	})
}
