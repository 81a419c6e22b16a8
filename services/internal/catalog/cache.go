package catalog

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// bodyCache holds encoded JSON bodies of the catalog's public reads
// (listing pages, products, categories). It is bounded (maxEntries),
// emptied on every write this replica makes to products (admin CRUD,
// reservations, releases, the expiry sweep), and every entry lives at most
// ttl, which bounds how stale a page can be after another replica's write.
// Only what is shown is cached: checkout decides stock in the database
// (Reserve's conditional UPDATE), never from here.
type bodyCache struct {
	ttl        time.Duration
	maxEntries int
	now        func() time.Time

	mu      sync.Mutex
	gen     uint64 // bumped by invalidate; a fill from an older generation is dropped
	entries map[string]cacheEntry
}

type cacheEntry struct {
	body    []byte
	expires time.Time
}

// CacheOptions tune the read cache; the zero value gives the defaults.
type CacheOptions struct {
	// TTL bounds the staleness of a read after another replica's write
	// (default 2s). Negative disables the cache.
	TTL time.Duration
	// MaxEntries bounds the number of cached bodies (default 1024).
	MaxEntries int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

func newBodyCache(o CacheOptions) *bodyCache {
	if o.TTL < 0 {
		return nil
	}
	if o.TTL == 0 {
		o.TTL = 2 * time.Second
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 1024
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &bodyCache{ttl: o.TTL, maxEntries: o.MaxEntries, now: o.Now, entries: make(map[string]cacheEntry)}
}

// get returns a fresh body, or the generation a later put must present.
func (c *bodyCache) get(key string) (body []byte, gen uint64) {
	if c == nil {
		return nil, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if ok && c.now().Before(e.expires) {
		return e.body, c.gen
	}
	if ok {
		delete(c.entries, key)
	}
	return nil, c.gen
}

// put stores body unless a write invalidated the cache since get returned gen
// (the query may have read rows from before that write).
func (c *bodyCache) put(key string, gen uint64, body []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	now := c.now()
	if len(c.entries) >= c.maxEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		// Still full: drop arbitrary entries (map order), enough for one more.
		for k := range c.entries {
			if len(c.entries) < c.maxEntries {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry{body: body, expires: now.Add(c.ttl)}
}

// invalidate empties the cache; called after every write to products.
func (c *bodyCache) invalidate() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.gen++
	clear(c.entries)
	c.mu.Unlock()
}

func (c *bodyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Header values shared by every cached response (net/http only reads them).
var (
	hdrJSON    = []string{"application/json"}
	hdrNoStore = []string{"no-store"}
)

// writeBody writes an encoded JSON body as platform.WriteJSON would.
func writeBody(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
