package controllers

import (
	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// secretRef is a Secret the Shop references and the keys it must hold.
type secretRef struct {
	Name string
	Keys []string
	For  string // what needs it, for the condition message
}

// secretRefs lists every Secret the effective spec references. Generated
// Secrets are not references: the operator creates them.
func secretRefs(in render.Input) []secretRef {
	var refs []secretRef
	dbs := map[string]shopv1.DatabaseSpec{
		render.Auth: in.Spec.Databases.Auth, render.Catalog: in.Spec.Databases.Catalog, render.Orders: in.Spec.Databases.Orders,
	}
	for _, svc := range render.Databases {
		if ext := dbs[svc].External; ext != nil {
			refs = append(refs, secretRef{Name: ext.SecretName, Keys: secrets.ExternalDatabaseKeys, For: svc + " database"})
		}
	}
	key := func(r *shopv1.SecretKeyRef, what string) {
		if r != nil {
			refs = append(refs, secretRef{Name: r.Name, Keys: []string{r.Key}, For: what})
		}
	}
	o := in.Spec.Observability
	if on(o.Datadog.Enabled) {
		key(o.Datadog.APIKeySecretRef, "Datadog exporter")
	}
	if on(o.NewRelic.Enabled) {
		key(o.NewRelic.LicenseKeySecretRef, "New Relic exporter")
	}
	if on(o.Alerting.Routing) {
		for _, rc := range o.Alerting.Receivers {
			what := "alert receiver " + rc.Name
			switch {
			case rc.Slack != nil:
				key(&rc.Slack.APIURLSecretRef, what)
			case rc.PagerDuty != nil:
				key(&rc.PagerDuty.RoutingKeySecretRef, what)
			case rc.Email != nil:
				key(rc.Email.AuthPasswordSecretRef, what)
			case rc.Webhook != nil:
				key(&rc.Webhook.URLSecretRef, what)
			}
		}
	}
	return refs
}
