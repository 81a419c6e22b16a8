package platform

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
)

// ownPrefixes are the prefixes of shopd's own variables. One of them set but
// never read is a mistake: misspelt, meant for another service, or rendered
// by a newer operator for a newer shopd. Serve refuses it (checkEnv).
var ownPrefixes = []string{"AUTH_", "CATALOG_", "ORDERS_", "PAYMENT_", "FRONTEND_"}

// envRead holds the names of the variables shopd has looked up.
var envRead sync.Map

// Getenv is os.Getenv for shopd's settings: every variable the services read
// goes through it, so that Serve can tell a variable that reached the
// service from one it ignored.
func Getenv(key string) string {
	envRead.Store(key, true)
	return os.Getenv(key)
}

// checkEnv returns the names of the set variables that were read, sorted,
// or an error naming every set variable of shopd's own that was not.
func checkEnv(service string) ([]string, error) {
	var read, unread []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		_, ok := envRead.Load(name)
		switch {
		case ok:
			read = append(read, name)
		case !ok && slices.ContainsFunc(ownPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }):
			unread = append(unread, name)
		}
	}
	slices.Sort(read)
	if len(unread) > 0 {
		slices.Sort(unread)
		return nil, fmt.Errorf("%s set, but shopd %s does not read it: misspelt, or meant for another service or shopd version? (the variables: docs/services.md)",
			strings.Join(unread, ", "), service)
	}
	return read, nil
}
