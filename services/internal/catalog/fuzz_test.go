package catalog

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

func is4xx(t *testing.T, err error) {
	t.Helper()
	var p *platform.Problem
	if !errors.As(err, &p) || p.Status < 400 || p.Status > 499 {
		t.Fatalf("not a 4xx problem: %v", err)
	}
}

// FuzzProductInput: admin product bodies decode and validate without panics,
// and whatever passes satisfies the table's constraints.
func FuzzProductInput(f *testing.F) {
	f.Add(`{"sku":"A-1","name":"n","price":"19.99","currency":"EUR","category":"books","stock":3}`)
	f.Add(`{"sku":"A-1","name":"n","price_minor":1,"price":"0.01","currency":"JPY","category":"b"}`)
	f.Add(`{"sku":"","price_minor":-1}`)
	f.Add(`{"sku":"A","name":"\u0000","price":"1e3","currency":"EUR","category":"-x","image_url":"<script>"}`)
	f.Fuzz(func(t *testing.T, body string) {
		var in ProductInput
		if err := platform.DecodeJSONReader(strings.NewReader(body), &in); err != nil {
			is4xx(t, err)
			return
		}
		p, err := in.Validate()
		if err != nil {
			is4xx(t, err)
			return
		}
		if !skuRE.MatchString(p.SKU) || p.PriceMinor < 0 || p.Stock < 0 || !platform.ValidCurrency(p.Currency) || !categoryRE.MatchString(p.Category) {
			t.Fatalf("invalid product passed: %+v", p)
		}
	})
}

// FuzzReserveRequest: a valid reservation request has unique, sorted SKUs
// and bounded quantities.
func FuzzReserveRequest(f *testing.F) {
	f.Add(`{"order_id":"o","items":[{"sku":"B","quantity":1},{"sku":"A","quantity":2},{"sku":"B","quantity":3}]}`)
	f.Add(`{"order_id":"o","items":[{"sku":"A","quantity":99},{"sku":"A","quantity":2}]}`)
	f.Add(`{"order_id":"","items":null}`)
	f.Add(`{"order_id":"o","items":[{"sku":"A","quantity":-9223372036854775808}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req ReserveRequest
		if err := platform.DecodeJSONReader(strings.NewReader(body), &req); err != nil {
			is4xx(t, err)
			return
		}
		if err := req.Validate(); err != nil {
			is4xx(t, err)
			return
		}
		if !sort.SliceIsSorted(req.Items, func(i, j int) bool { return req.Items[i].SKU < req.Items[j].SKU }) {
			t.Fatal("items not sorted")
		}
		for i, it := range req.Items {
			if it.Quantity < 1 || it.Quantity > 100 || (i > 0 && req.Items[i-1].SKU == it.SKU) {
				t.Fatalf("bad item passed: %+v", req.Items)
			}
		}
	})
}
