package status

import (
	"fmt"

	"github.com/shopplatform/shop-operator/internal/render"
)

// ProblemKind is what is wrong with a referenced Secret.
type ProblemKind int

const (
	SecretNotFound ProblemKind = iota + 1
	SecretKeyMissing
)

// Problem is one referenced Secret that is missing or lacks a key.
type Problem struct {
	Kind    ProblemKind
	Subject render.Subject
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
func (ps Problems) In(a render.Area) Problems {
	return ps.filter(func(p Problem) bool { return p.Subject.Area == a })
}

// About returns the problems of one subject.
func (ps Problems) About(s render.Subject) Problems {
	return ps.filter(func(p Problem) bool { return p.Subject == s })
}
