package frontend

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkProductPage measures the storefront's own cost of a product page
// (one catalog call over loopback HTTP to an in-memory fake, template render).
func BenchmarkProductPage(b *testing.B) {
	back := httptest.NewServer(newFakeShop())
	defer back.Close()
	srv, err := New(Options{AuthURL: back.URL, CatalogURL: back.URL, OrdersURL: back.URL})
	if err != nil {
		b.Fatal(err)
	}
	front := httptest.NewServer(srv)
	defer front.Close()
	c := &http.Client{}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(front.URL + "/products/MUG-1")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// BenchmarkHomePage: a product list and the categories (two concurrent
// calls to the fake) and the grid's render.
func BenchmarkHomePage(b *testing.B) {
	back := httptest.NewServer(newFakeShop())
	defer back.Close()
	srv, err := New(Options{AuthURL: back.URL, CatalogURL: back.URL, OrdersURL: back.URL})
	if err != nil {
		b.Fatal(err)
	}
	front := httptest.NewServer(srv)
	defer front.Close()
	c := &http.Client{}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(front.URL + "/")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// BenchmarkCrossOriginCheck is what the CSRF check adds to every request:
// a same-origin form post (accepted) and a cross-site one (refused).
func BenchmarkCrossOriginCheck(b *testing.B) {
	c := http.NewCrossOriginProtection()
	for _, tc := range []struct{ name, origin, site string }{
		{"same-origin", "https://shop.example.com", "same-origin"},
		{"old-browser-same-origin", "https://shop.example.com", ""},
		{"cross-site", "https://evil.example", "cross-site"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest("POST", "https://shop.example.com/checkout", nil)
			r.Header.Set("Origin", tc.origin)
			if tc.site != "" {
				r.Header.Set("Sec-Fetch-Site", tc.site)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = c.Check(r)
			}
		})
	}
}
