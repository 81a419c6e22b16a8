package engine

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/profile"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
	"github.com/shopplatform/shop-operator/internal/status"
)

// Values says what Prepare puts in for a generated value that its Secret
// does not hold yet.
type Values int

const (
	// Generate it: the operator, which then keeps it in its Secret.
	Generate Values = iota
	// Placeholders: shopctl, which never makes up or prints a real secret.
	Placeholders
)

// Prepared is a Shop ready to render, and what preparing it found.
type Prepared struct {
	// Resolved is the input as the Shop asks for it, with the values read
	// from the cluster: what the status describes (an exporter whose Secret
	// is missing is on here, and its condition says why it is off).
	Resolved render.Input
	// Input is what the builders render: Resolved without what a missing
	// reference leaves out (see without).
	Input render.Input
	// MissingAPIs are the optional APIs the Shop wants and the cluster lacks.
	MissingAPIs []string
	// Problems are the referenced Secrets that are missing or lack a key.
	Problems status.Problems
	// Reached is how far preparing got: status.Referenced unless Prepare
	// failed (status.Resolved: the generated values were read, the
	// references not).
	Reached status.Stage
}

// Prepare makes the builders' input for a Shop on a cluster that serves
// apis. It is the one way to it, for the operator and shopctl alike: the
// spec resolved under its profile; the values of the generated Secrets read
// from c (what is missing generated or a placeholder, see Values); every
// Secret the builders reference (SecretRefs) checked, and the values pods
// read only at start passed on (Input.Referenced); the Shop rendered
// without what a missing, non-blocking reference leaves out.
//
// With no cluster (c nil: shopctl render from files alone) every generated
// value is a placeholder and every referenced Secret is taken to be there.
func Prepare(ctx context.Context, shop *shopv1.Shop, apis render.APIs, c client.Reader, values Values) (Prepared, error) {
	in := render.Input{Shop: shop, Spec: profile.Resolve(shop.Spec), APIs: apis}
	p := Prepared{MissingAPIs: MissingAPIs(in)}
	specs := secrets.For(in)
	if c == nil {
		in.Generated = secrets.Placeholders(specs)
		p.Resolved, p.Input, p.Reached = in, in, status.Referenced
		return p, nil
	}

	existing := map[string]map[string][]byte{}
	for _, s := range specs {
		data, found, err := readSecret(ctx, c, shop.Namespace, s.Name)
		if err != nil {
			return p, err
		}
		if found {
			existing[s.Name] = data
		}
	}
	if values == Placeholders {
		specs = secrets.AsPlaceholders(specs)
	}
	var err error
	if in.Generated, err = secrets.Fill(specs, existing); err != nil {
		return p, err
	}
	p.Resolved, p.Reached = in, status.Resolved

	if p.Problems, in.Referenced, err = checkReferences(ctx, c, in); err != nil {
		return p, err
	}
	p.Resolved, p.Reached = in, status.Referenced
	p.Input = without(in, p.Problems)
	return p, nil
}

// checkReferences checks every Secret the Shop references and returns the
// problems it finds, and the values of the keys that pods read at start.
func checkReferences(ctx context.Context, c client.Reader, in render.Input) (status.Problems, map[string]map[string][]byte, error) {
	var problems status.Problems
	referenced := map[string]map[string][]byte{}
	for _, ref := range SecretRefs(in) {
		missing := status.Problem{Kind: status.SecretNotFound, Subject: ref.For, Secret: ref.Name, Blocking: ref.Blocking}
		data, found, err := readSecret(ctx, c, in.Shop.Namespace, ref.Name)
		if err != nil {
			return nil, nil, err
		}
		if !found {
			problems = append(problems, missing)
			continue
		}
		for _, k := range ref.Keys {
			if len(data[k]) == 0 {
				missing.Kind, missing.Key = status.SecretKeyMissing, k
				problems = append(problems, missing)
			}
		}
		for _, k := range ref.Rolls {
			if v := data[k]; len(v) > 0 {
				if referenced[ref.Name] == nil {
					referenced[ref.Name] = map[string][]byte{}
				}
				referenced[ref.Name][k] = v
			}
		}
	}
	return problems, referenced, nil
}

// readSecret returns a Secret's data, or found false when there is none.
func readSecret(ctx context.Context, c client.Reader, namespace, name string) (map[string][]byte, bool, error) {
	sec := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sec)
	switch {
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	return sec.Data, true, nil
}

// without renders the Shop without what needs a missing, non-blocking
// reference, where a reference that cannot be resolved would hold more back
// than what needs it:
//   - an exporter is switched off, so the collector still starts and the
//     other exporters keep working;
//   - auth runs without the admin's variables: a required secretKeyRef to a
//     missing Secret would keep its pods from starting, for want of an
//     account only an admin needs.
//
// The rest is rendered anyway (a backup's upload step, an alert receiver
// fail on their own). The status says what is missing (see Prepared.Resolved).
func without(in render.Input, problems status.Problems) render.Input {
	o := &in.Spec.Observability
	switches := map[string]**bool{"datadog": &o.Datadog.Enabled, "newrelic": &o.NewRelic.Enabled}
	for name, enabled := range switches {
		if len(problems.About(render.Exporter(name))) > 0 {
			off := false
			*enabled = &off
		}
	}
	if len(problems.About(render.AdminAccount)) > 0 {
		in.Spec.Admin = nil
	}
	return in
}
