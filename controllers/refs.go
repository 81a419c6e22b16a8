package controllers

import (
	"fmt"

	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/builders/collector"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// area is what kind of thing needs a referenced Secret.
type area int

const (
	areaDatabase     area = iota + 1 // an external database's connection
	areaExporter                     // an exporter's credentials
	areaBackupUpload                 // a database's backup bucket
	areaAlertRouting                 // an alert receiver's credentials
)

// subject is what needs a referenced Secret: an area and, within it, the
// service or the exporter.
type subject struct {
	area area
	name string
}

func databaseOf(svc string) subject     { return subject{areaDatabase, svc} }
func exporterNamed(name string) subject { return subject{areaExporter, name} }

// String names the subject in condition messages, e.g. "orders database".
func (s subject) String() string {
	switch s.area {
	case areaDatabase:
		return s.name + " database"
	case areaExporter:
		return s.name + " exporter"
	case areaBackupUpload:
		return s.name + " backup upload"
	default:
		return "alert routing"
	}
}

// secretRef is a Secret the rendered children read and the keys it must hold.
type secretRef struct {
	Name string
	Keys []string
	For  subject
	// Blocking: the Shop cannot run without it (a service cannot start
	// without its database). Anything else that misses its Secret is left out
	// and reported in its own condition; the rest keeps working.
	Blocking bool
	// CA: the Secret may hold a ca.crt that pods trust (external databases);
	// the controller passes it to the builders to roll them when it changes.
	CA bool
}

// problemKind is what is wrong with a referenced Secret.
type problemKind int

const (
	secretNotFound problemKind = iota + 1
	secretKeyMissing
)

// problem is one referenced Secret that is missing or lacks a key.
type problem struct {
	kind     problemKind
	subject  subject
	secret   string
	key      string // secretKeyMissing: the key
	blocking bool   // copied from the reference
}

func (p problem) String() string {
	if p.kind == secretKeyMissing {
		return fmt.Sprintf("%s: Secret %q has no key %q", p.subject, p.secret, p.key)
	}
	return fmt.Sprintf("%s: Secret %q not found", p.subject, p.secret)
}

// problemsOf returns the problems that match keep.
func problemsOf(problems []problem, keep func(problem) bool) []problem {
	var out []problem
	for _, p := range problems {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

func blocking(p problem) bool { return p.blocking }

func inArea(a area) func(problem) bool { return func(p problem) bool { return p.subject.area == a } }

func about(s subject) func(problem) bool { return func(p problem) bool { return p.subject == s } }

// secretRefs lists every Secret the Shop references, as the builders that
// read them report it. Generated Secrets are not references: the operator
// creates them.
func secretRefs(in render.Input) []secretRef {
	var refs []secretRef
	for _, svc := range render.Databases {
		if ext := in.ExternalDatabase(svc); ext != nil {
			refs = append(refs, secretRef{Name: ext.SecretName, Keys: secrets.ExternalDatabaseKeys, For: databaseOf(svc), Blocking: true, CA: true})
		}
	}
	for _, r := range collector.SecretRefs(in) {
		refs = append(refs, secretRef{Name: r.Name, Keys: []string{r.Key}, For: exporterNamed(r.For)})
	}
	// A missing bucket Secret fails only the upload step of the backups (the
	// dump still lands on the volume), so like an exporter's it does not hold
	// the Shop back: ReferencesResolved says what is missing.
	for _, r := range backups.SecretRefs(in) {
		refs = append(refs, secretRef{Name: r.Name, Keys: r.Keys, For: subject{areaBackupUpload, r.Service}})
	}
	for _, r := range monitoring.SecretRefs(in) {
		refs = append(refs, secretRef{Name: r.Name, Keys: []string{r.Key}, For: subject{area: areaAlertRouting}})
	}
	return refs
}
