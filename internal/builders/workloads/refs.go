package workloads

import (
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// SecretRefs lists the user's Secrets the services read: an external
// database's connection, and the admin's credentials.
func SecretRefs(in render.Input) []render.SecretRef {
	var refs []render.SecretRef
	for _, svc := range render.Databases {
		// A service cannot start without its database: blocking. The CA is
		// read once per connection pool: a new one rolls the pods.
		if ext := in.ExternalDatabase(svc); ext != nil {
			refs = append(refs, render.SecretRef{Name: ext.SecretName, Keys: secrets.ExternalDatabaseKeys, For: render.DatabaseOf(svc),
				Blocking: true, Rolls: []string{secrets.CACertKey}})
		}
	}
	// Auth reads the admin's credentials only at start: a change rolls it.
	// Not blocking: while they are missing auth runs without an admin (see
	// engine.Prepare) and ReferencesResolved says what is missing.
	if a := in.Spec.Admin; a != nil {
		refs = append(refs, render.SecretRef{Name: a.SecretName, Keys: secrets.AdminKeys, For: render.AdminAccount, Rolls: secrets.AdminKeys})
	}
	return refs
}
