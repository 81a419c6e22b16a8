package monitoring

import (
	"encoding/json"
	"fmt"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
)

// NoneReceiver takes the alerts no receiver asked for (an AlertmanagerConfig
// route needs a receiver at its top).
const NoneReceiver = "none"

// GroupBy aggregates notifications: one per shop and alert.
var GroupBy = []string{"shop", "alertname"}

// routingWanted: the API is there, routing is on and someone receives.
// Development without receivers renders nothing.
func routingWanted(in render.Input) bool {
	a := in.Spec.Observability.Alerting
	return in.APIs.AlertmanagerConfig && ptr.Deref(a.Routing, false) && len(a.Receivers) > 0
}

// SecretRefs lists the Secret keys the alert routing reads (receiver
// credentials), for engine.Prepare to check and the status to report. Pure.
func SecretRefs(in render.Input) []render.SecretRef {
	a := in.Spec.Observability.Alerting
	if !ptr.Deref(a.Routing, false) {
		return nil
	}
	var refs []render.SecretRef
	add := func(r shopv1.SecretKeyRef) {
		refs = append(refs, render.SecretRef{Name: r.Name, Keys: []string{r.Key}, For: render.AlertRouting})
	}
	for _, r := range a.Receivers {
		switch {
		case r.Slack != nil:
			add(r.Slack.APIURLSecretRef)
		case r.PagerDuty != nil:
			add(r.PagerDuty.RoutingKeySecretRef)
		case r.Email != nil && r.Email.AuthPasswordSecretRef != nil:
			add(*r.Email.AuthPasswordSecretRef)
		case r.Webhook != nil:
			add(r.Webhook.URLSecretRef)
		}
	}
	return refs
}

func alertmanagerConfig(in render.Input) (*monitoringv1alpha1.AlertmanagerConfig, error) {
	if !routingWanted(in) {
		return nil, nil
	}
	receivers := []monitoringv1alpha1.Receiver{{Name: NoneReceiver}}
	var routes []apiextensionsv1.JSON
	for _, r := range in.Spec.Observability.Alerting.Receivers {
		if r.Name == NoneReceiver {
			return nil, fmt.Errorf("alerting.receivers: the name %q is reserved for alerts no receiver takes; rename that receiver", NoneReceiver)
		}
		receivers = append(receivers, receiver(r))
		child := monitoringv1alpha1.Route{Receiver: r.Name, Continue: true}
		if r.Severity == Critical || r.Severity == Warning {
			child.Matchers = []monitoringv1alpha1.Matcher{equal("severity", string(r.Severity))}
		}
		raw, _ := json.Marshal(child) // a plain struct: cannot fail
		routes = append(routes, apiextensionsv1.JSON{Raw: raw})
	}
	meta := in.ObjectMeta(in.Name("routing"), Component)
	meta.Labels = labels(in)
	return &monitoringv1alpha1.AlertmanagerConfig{
		ObjectMeta: meta,
		Spec: monitoringv1alpha1.AlertmanagerConfigSpec{
			Route: &monitoringv1alpha1.Route{
				Receiver:       NoneReceiver,
				GroupBy:        GroupBy,
				GroupWait:      ptr.To(monitoringv1.NonEmptyDuration("30s")),
				GroupInterval:  ptr.To(monitoringv1.NonEmptyDuration("5m")),
				RepeatInterval: ptr.To(monitoringv1.NonEmptyDuration("4h")),
				Matchers:       []monitoringv1alpha1.Matcher{equal("shop", in.Shop.Name)},
				Routes:         routes,
			},
			Receivers:    receivers,
			InhibitRules: inhibitRules(),
		},
	}, nil
}

// InhibitedByDatabaseDown are the alerts a database-down alert silences for
// the service that uses that database: they only repeat the cause.
var InhibitedByDatabaseDown = []string{AlertHighErrorRatio, AlertHighLatency, AlertAvailabilityBurn, AlertLatencyBurn}

func inhibitRules() []monitoringv1alpha1.InhibitRule {
	return []monitoringv1alpha1.InhibitRule{
		{
			SourceMatch: []monitoringv1alpha1.Matcher{equal("alertname", AlertDatabaseDown)},
			TargetMatch: []monitoringv1alpha1.Matcher{{Name: "alertname", Value: strings.Join(InhibitedByDatabaseDown, "|"), MatchType: monitoringv1alpha1.MatchRegexp}},
			Equal:       []string{"shop", "service"},
		},
		{
			SourceMatch: []monitoringv1alpha1.Matcher{equal("severity", Critical)},
			TargetMatch: []monitoringv1alpha1.Matcher{equal("severity", Warning)},
			Equal:       []string{"shop", "service", "alertname"},
		},
	}
}

func equal(name, value string) monitoringv1alpha1.Matcher {
	return monitoringv1alpha1.Matcher{Name: name, Value: value, MatchType: monitoringv1alpha1.MatchEqual}
}

func secret(ref shopv1.SecretKeyRef) *corev1.SecretKeySelector {
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key}
}

func receiver(r shopv1.Receiver) monitoringv1alpha1.Receiver {
	out := monitoringv1alpha1.Receiver{Name: r.Name}
	resolved := ptr.To(true)
	switch {
	case r.Slack != nil:
		c := monitoringv1alpha1.SlackConfig{SendResolved: resolved, APIURL: secret(r.Slack.APIURLSecretRef)}
		if r.Slack.Channel != "" {
			c.Channel = ptr.To(r.Slack.Channel)
		}
		out.SlackConfigs = []monitoringv1alpha1.SlackConfig{c}
	case r.PagerDuty != nil:
		out.PagerDutyConfigs = []monitoringv1alpha1.PagerDutyConfig{{SendResolved: resolved, RoutingKey: secret(r.PagerDuty.RoutingKeySecretRef)}}
	case r.Email != nil:
		from := r.Email.From
		if from == "" {
			// Alertmanager refuses a mail receiver without a sender.
			from = "alertmanager@" + strings.Split(r.Email.Smarthost, ":")[0]
		}
		c := monitoringv1alpha1.EmailConfig{SendResolved: resolved, To: ptr.To(r.Email.To), From: ptr.To(from), Smarthost: ptr.To(r.Email.Smarthost)}
		if r.Email.AuthPasswordSecretRef != nil {
			// The API has no user field: mail servers take the sender's address.
			c.AuthUsername, c.AuthPassword = ptr.To(from), secret(*r.Email.AuthPasswordSecretRef)
		}
		out.EmailConfigs = []monitoringv1alpha1.EmailConfig{c}
	case r.Webhook != nil:
		out.WebhookConfigs = []monitoringv1alpha1.WebhookConfig{{SendResolved: resolved, URLSecret: secret(r.Webhook.URLSecretRef)}}
	}
	return out
}
