package controllers

import (
	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/builders/collector"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// secretRef is a Secret the rendered children read and the keys it must hold.
type secretRef struct {
	Name string
	Keys []string
	For  string // what needs it, for the condition message
	// Rolls are keys (required or optional) whose values pods read only
	// when they start: the controller passes them to the builders
	// (render.Input.Referenced), which roll the pods when one changes.
	Rolls []string
}

// secretRefs lists every Secret the Shop references, as the builders that
// read them report it. Generated Secrets are not references: the operator
// creates them.
func secretRefs(in render.Input) []secretRef {
	var refs []secretRef
	dbs := map[string]shopv1.DatabaseSpec{
		render.Auth: in.Spec.Databases.Auth, render.Catalog: in.Spec.Databases.Catalog, render.Orders: in.Spec.Databases.Orders,
	}
	for _, svc := range render.Databases {
		if ext := dbs[svc].External; ext != nil {
			refs = append(refs, secretRef{Name: ext.SecretName, Keys: secrets.ExternalDatabaseKeys, For: svc + " database",
				Rolls: []string{secrets.CACertKey}})
		}
	}
	// Auth reads the admin's credentials only at start: a change rolls it.
	if a := in.Spec.Admin; a != nil {
		refs = append(refs, secretRef{Name: a.SecretName, Keys: secrets.AdminKeys, For: adminFor, Rolls: secrets.AdminKeys})
	}
	for _, r := range collector.SecretRefs(in) {
		refs = append(refs, secretRef{Name: r.Name, Keys: []string{r.Key}, For: exporterFor(r.For)})
	}
	// A missing bucket Secret fails only the upload step of the backups (the
	// dump still lands on the volume), so like an exporter's it does not hold
	// the Shop back: ReferencesResolved says what is missing.
	for _, r := range backups.SecretRefs(in) {
		refs = append(refs, secretRef{Name: r.Name, Keys: r.Keys, For: r.For})
	}
	for _, r := range monitoring.SecretRefs(in) {
		refs = append(refs, secretRef{Name: r.Name, Keys: []string{r.Key}, For: "alert routing"})
	}
	return refs
}

// adminFor names the admin Secret in reference problems.
const adminFor = "admin account"

// exporterFor names an exporter in reference problems; exporterConditions
// finds its problems by this prefix.
func exporterFor(name string) string { return name + " exporter" }
