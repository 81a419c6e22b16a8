package status

import "fmt"

// Area is what kind of thing needs a referenced Secret.
type Area int

const (
	AreaDatabase     Area = iota + 1 // an external database's connection
	AreaExporter                     // an exporter's credentials
	AreaBackupUpload                 // a database's backup bucket
	AreaAlertRouting                 // an alert receiver's credentials
	AreaAdmin                        // the administrator's credentials (spec.admin)
)

// Subject is what needs a referenced Secret: an area and, within it, the
// service or the exporter (none for alert routing and the admin).
type Subject struct {
	Area Area
	Name string
}

// DatabaseOf is the database of a service.
func DatabaseOf(svc string) Subject { return Subject{AreaDatabase, svc} }

// Exporter is the exporter with a collector.Exporter name (datadog, newrelic).
func Exporter(name string) Subject { return Subject{AreaExporter, name} }

// BackupUploadOf is the backup upload of a service's database.
func BackupUploadOf(svc string) Subject { return Subject{AreaBackupUpload, svc} }

// AlertRouting is the Shop's alert routing.
var AlertRouting = Subject{Area: AreaAlertRouting}

// Admin is the Shop's administrator account, which auth creates at start
// from spec.admin.secretName.
var Admin = Subject{Area: AreaAdmin}

// String names the subject in condition messages, e.g. "orders database".
func (s Subject) String() string {
	switch s.Area {
	case AreaDatabase:
		return s.Name + " database"
	case AreaExporter:
		return s.Name + " exporter"
	case AreaBackupUpload:
		return s.Name + " backup upload"
	case AreaAdmin:
		return "admin account"
	default:
		return "alert routing"
	}
}

// ProblemKind is what is wrong with a referenced Secret.
type ProblemKind int

const (
	SecretNotFound ProblemKind = iota + 1
	SecretKeyMissing
)

// Problem is one referenced Secret that is missing or lacks a key.
type Problem struct {
	Kind    ProblemKind
	Subject Subject
	Secret  string
	Key     string // SecretKeyMissing: the key
	// Blocking: the Shop cannot run without it (a service cannot start
	// without its database's connection). Anything else is left out and
	// reported in its own condition; the rest keeps working.
	Blocking bool
}

func (p Problem) String() string {
	if p.Kind == SecretKeyMissing {
		return fmt.Sprintf("%s: Secret %q has no key %q", p.Subject, p.Secret, p.Key)
	}
	return fmt.Sprintf("%s: Secret %q not found", p.Subject, p.Secret)
}

// Problems are the problems one reconcile found.
type Problems []Problem

func (ps Problems) filter(keep func(Problem) bool) Problems {
	var out Problems
	for _, p := range ps {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// Blocking returns the problems that hold the whole Shop back.
func (ps Problems) Blocking() Problems { return ps.filter(func(p Problem) bool { return p.Blocking }) }

// In returns the problems of one area.
func (ps Problems) In(a Area) Problems {
	return ps.filter(func(p Problem) bool { return p.Subject.Area == a })
}

// About returns the problems of one subject.
func (ps Problems) About(s Subject) Problems {
	return ps.filter(func(p Problem) bool { return p.Subject == s })
}
