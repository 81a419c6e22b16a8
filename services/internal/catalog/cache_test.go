package catalog

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the cache's TTL.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (e *env) listedStock(path, sku string) int {
	e.t.Helper()
	var p page
	json.Unmarshal(e.expect("GET", path, "", nil, 200, ""), &p)
	for _, pr := range p.Products {
		if pr.SKU == sku {
			return pr.Stock
		}
	}
	e.t.Fatalf("%s not on %s", sku, path)
	return 0
}

// otherReplica writes to the database behind the cache's back, as another
// catalog replica would.
func (e *env) otherReplica(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.svc.db.Exec(e.t.Context(), sql, args...); err != nil {
		e.t.Fatal(err)
	}
}

// A cached page is served until its TTL passes, then read again.
func TestCacheHitAndTTL(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_000_000, 0)}
	e := newEnvWith(t, CacheOptions{TTL: 2 * time.Second, Now: clk.Now})
	const list = "/api/catalog/products?category=books&page_size=5"
	before := e.listedStock(list, "BOOK-001")
	beforeProduct := e.stock("BOOK-001")
	e.otherReplica(`UPDATE products SET stock = stock + 7 WHERE sku = 'BOOK-001'`)
	if got := e.listedStock(list, "BOOK-001"); got != before {
		t.Fatalf("listing within TTL: stock %d, want the cached %d", got, before)
	}
	if got := e.stock("BOOK-001"); got != beforeProduct {
		t.Fatalf("product within TTL: stock %d, want the cached %d", got, beforeProduct)
	}
	if e.svc.cache.len() != 2 {
		t.Fatalf("%d cached bodies, want 2", e.svc.cache.len())
	}
	clk.Add(2 * time.Second)
	if got := e.listedStock(list, "BOOK-001"); got != before+7 {
		t.Fatalf("listing after TTL: stock %d, want %d", got, before+7)
	}
	if got := e.stock("BOOK-001"); got != beforeProduct+7 {
		t.Fatalf("product after TTL: stock %d, want %d", got, beforeProduct+7)
	}
}

// The catalog's own writes empty the cache at once: admin CRUD, reservations
// and releases, the expiry sweep.
func TestCacheInvalidatedOnWrites(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_000_000, 0)} // never advanced: only invalidation can refresh
	e := newEnvWith(t, CacheOptions{TTL: time.Hour, Now: clk.Now})
	const list = "/api/catalog/products?category=toys&page_size=100"
	e.expect("GET", list, "", nil, 200, "")
	e.expect("GET", "/api/catalog/categories", "", nil, 200, "")

	e.expect("POST", "/api/catalog/products", e.admin, map[string]any{"sku": "CACHE-1", "name": "Cached toy", "price_minor": 100, "currency": "EUR", "category": "toys", "stock": 10}, 201, "")
	if got := e.listedStock(list, "CACHE-1"); got != 10 {
		t.Fatalf("after create: stock %d", got)
	}
	e.expect("PUT", "/api/catalog/products/CACHE-1", e.admin, map[string]any{"name": "Cached toy", "price_minor": 100, "currency": "EUR", "category": "toys", "stock": 8}, 200, "")
	if got := e.listedStock(list, "CACHE-1"); got != 8 {
		t.Fatalf("after update: stock %d, want 8", got)
	}
	if got := e.stock("CACHE-1"); got != 8 {
		t.Fatalf("product after update: stock %d, want 8", got)
	}
	var res Reservation
	json.Unmarshal(e.expect("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: "cache-o1", Items: []Item{{SKU: "CACHE-1", Quantity: 3}}}, 201, ""), &res)
	if got, pg := e.stock("CACHE-1"), e.listedStock(list, "CACHE-1"); got != 5 || pg != 5 {
		t.Fatalf("after reserve: product %d, listing %d, want 5", got, pg)
	}
	e.expect("POST", "/api/catalog/reservations/"+res.ID+"/release", e.customer, nil, 200, "")
	if got, pg := e.stock("CACHE-1"), e.listedStock(list, "CACHE-1"); got != 8 || pg != 8 {
		t.Fatalf("after release: product %d, listing %d, want 8", got, pg)
	}
	e.expect("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: "cache-o2", Items: []Item{{SKU: "CACHE-1", Quantity: 2}}}, 201, "")
	e.otherReplica(`UPDATE reservations SET created_at = now() - interval '2 hours' WHERE order_id = 'cache-o2'`)
	if e.stock("CACHE-1") != 6 {
		t.Fatal("stock after second reserve")
	}
	if n, err := e.svc.SweepExpired(t.Context(), time.Hour); err != nil || n != 1 {
		t.Fatalf("swept %d, %v", n, err)
	}
	if got := e.stock("CACHE-1"); got != 8 {
		t.Fatalf("after sweep: stock %d, want 8", got)
	}
	e.expect("DELETE", "/api/catalog/products/CACHE-1", e.admin, nil, 204, "")
	e.expect("GET", "/api/catalog/products/CACHE-1", "", nil, 404, "not_found")
	var p page
	json.Unmarshal(e.expect("GET", list, "", nil, 200, ""), &p)
	for _, pr := range p.Products {
		if pr.SKU == "CACHE-1" {
			t.Fatal("deleted product still listed")
		}
	}
}

// The cache never holds more than MaxEntries bodies.
func TestCacheBounded(t *testing.T) {
	e := newEnvWith(t, CacheOptions{TTL: time.Hour, MaxEntries: 3})
	for i := 1; i <= 8; i++ {
		e.expect("GET", fmt.Sprintf("/api/catalog/products?page_size=%d", i), "", nil, 200, "")
		e.expect("GET", fmt.Sprintf("/api/catalog/products?page_size=%d&category=books", i), "", nil, 200, "")
		if n := e.svc.cache.len(); n > 3 {
			t.Fatalf("%d cached bodies, bound 3", n)
		}
	}
	if n := e.svc.cache.len(); n != 3 {
		t.Fatalf("%d cached bodies, want 3", n)
	}
	// Unknown products are not cached.
	e.svc.cache.invalidate()
	e.expect("GET", "/api/catalog/products/NOPE-1", "", nil, 404, "not_found")
	if n := e.svc.cache.len(); n != 0 {
		t.Fatalf("404 cached (%d bodies)", n)
	}
}

// A listing may show stale stock for up to the TTL, but checkout decides in
// the database: a reservation beyond what is left fails although the cached
// page still shows enough, and stock never goes below zero.
func TestCacheNeverOversells(t *testing.T) {
	e := newEnvWith(t, CacheOptions{TTL: time.Hour})
	const list = "/api/catalog/products?category=toys&page_size=100"
	e.expect("POST", "/api/catalog/products", e.admin, map[string]any{"sku": "STALE-1", "name": "Stale toy", "price_minor": 100, "currency": "EUR", "category": "toys", "stock": 5}, 201, "")
	if e.listedStock(list, "STALE-1") != 5 {
		t.Fatal("listing")
	}
	e.otherReplica(`UPDATE products SET stock = 1 WHERE sku = 'STALE-1'`) // another replica sold 4
	if e.listedStock(list, "STALE-1") != 5 {
		t.Fatal("want the stale cached page")
	}
	e.expect("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: "stale-1", Items: []Item{{SKU: "STALE-1", Quantity: 2}}}, 409, "out_of_stock")
	e.expect("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: "stale-2", Items: []Item{{SKU: "STALE-1", Quantity: 1}}}, 201, "")
	e.expect("POST", "/api/catalog/reservations", e.customer, ReserveRequest{OrderID: "stale-3", Items: []Item{{SKU: "STALE-1", Quantity: 1}}}, 409, "out_of_stock")
	if got := e.listedStock(list, "STALE-1"); got != 0 {
		t.Fatalf("listing after this replica's reservation: %d, want 0", got)
	}
}

// A query that started before a write must not refill the cache with what it
// read: the generation check drops it.
func TestCacheDropsFillFromBeforeWrite(t *testing.T) {
	c := newBodyCache(CacheOptions{TTL: time.Hour})
	_, gen := c.get("k")
	c.invalidate()
	c.put("k", gen, []byte("old"))
	if b, _ := c.get("k"); b != nil {
		t.Fatalf("stale fill cached: %q", b)
	}
	_, gen = c.get("k")
	c.put("k", gen, []byte("new"))
	if b, _ := c.get("k"); string(b) != "new" {
		t.Fatalf("got %q", b)
	}
}
