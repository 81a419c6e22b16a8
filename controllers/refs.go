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
	// Rolls are keys (required or optional) whose values pods read only
	// when they start (an external database's ca.crt, the admin's
	// credentials): the controller passes them to the builders
	// (render.Input.Referenced), which roll the pods when one changes.
	Rolls []string
}

// secretRefs lists every Secret the Shop references, as the builders that
// read them report it. Generated Secrets are not references: the operator
// creates them.
func secretRefs(in render.Input) []secretRef {
	var refs []secretRef
	for _, svc := range render.Databases {
		if ext := in.ExternalDatabase(svc); ext != nil {
			refs = append(refs, secretRef{Name: ext.SecretName, Keys: secrets.ExternalDatabaseKeys, For: status.DatabaseOf(svc), Blocking: true,
				Rolls: []string{secrets.CACertKey}})
		}
	}
	// Auth reads the admin's credentials only at start: a change rolls it.
	// Not blocking: while they are missing auth runs without an admin
	// (withoutUnreadyAdmin) and ReferencesResolved says what is missing.
	if a := in.Spec.Admin; a != nil {
		refs = append(refs, secretRef{Name: a.SecretName, Keys: secrets.AdminKeys, For: status.Admin, Rolls: secrets.AdminKeys})
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
