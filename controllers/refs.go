package controllers

import (
	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/builders/collector"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
	"github.com/shopplatform/shop-operator/internal/status"
)

// secretRef is a Secret the rendered children read and the keys it must hold.
type secretRef struct {
	Name string
	Keys []string
	For  status.Subject
	// Blocking: the Shop cannot run without it (a service cannot start
	// without its database). Anything else that misses its Secret is left out
	// and reported in its own condition; the rest keeps working.
	Blocking bool
	// CA: the Secret may hold a ca.crt that pods trust (external databases);
	// the controller passes it to the builders to roll them when it changes.
	CA bool
}

// secretRefs lists every Secret the Shop references, as the builders that
// read them report it. Generated Secrets are not references: the operator
// creates them.
func secretRefs(in render.Input) []secretRef {
	var refs []secretRef
	for _, svc := range render.Databases {
		if ext := in.ExternalDatabase(svc); ext != nil {
			refs = append(refs, secretRef{Name: ext.SecretName, Keys: secrets.ExternalDatabaseKeys, For: status.DatabaseOf(svc), Blocking: true, CA: true})
		}
	}
	for _, r := range collector.SecretRefs(in) {
		refs = append(refs, secretRef{Name: r.Name, Keys: []string{r.Key}, For: status.Exporter(r.For)})
	}
	// A missing bucket Secret fails only the upload step of the backups (the
	// dump still lands on the volume), so like an exporter's it does not hold
	// the Shop back: ReferencesResolved says what is missing.
	for _, r := range backups.SecretRefs(in) {
		refs = append(refs, secretRef{Name: r.Name, Keys: r.Keys, For: status.BackupUploadOf(r.Service)})
	}
	for _, r := range monitoring.SecretRefs(in) {
		refs = append(refs, secretRef{Name: r.Name, Keys: []string{r.Key}, For: status.AlertRouting})
	}
	return refs
}
