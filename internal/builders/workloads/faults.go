package workloads

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/render"
)

// The payment service's fault-injection variables (services/internal/payment).
const (
	EnvPaymentFaultErrorRatio = "PAYMENT_FAULT_ERROR_RATIO"
	EnvPaymentFaultLatency    = "PAYMENT_FAULT_LATENCY"
)

// faultEnv renders spec.operations.faultInjection for a service; only what
// is switched on, so a Shop without fault injection renders as before.
func faultEnv(in render.Input, svc string) []corev1.EnvVar {
	p := in.Spec.Operations.FaultInjection.Payment
	if svc != render.Payment || p == nil {
		return nil
	}
	var vars []corev1.EnvVar
	if pct := ptr.Deref(p.ErrorPercent, 0); pct > 0 {
		vars = append(vars, corev1.EnvVar{Name: EnvPaymentFaultErrorRatio, Value: strconv.FormatFloat(float64(pct)/100, 'f', -1, 64)})
	}
	if p.Latency != nil && p.Latency.Duration > 0 {
		vars = append(vars, corev1.EnvVar{Name: EnvPaymentFaultLatency, Value: p.Latency.Duration.String()})
	}
	return vars
}

// Faults describes the fault injection the payment pods run with, from the
// env this builder renders (the Shop's field, or the user's own variable of
// the same name, which wins): "" when none. The Shop's FaultInjection
// condition shows it.
func Faults(in render.Input) string {
	var parts []string
	for _, v := range env(in, render.Payment, in.Workload(render.Payment)) {
		var what string
		switch v.Name {
		case EnvPaymentFaultErrorRatio:
			what = "error ratio"
		case EnvPaymentFaultLatency:
			what = "added latency"
		default:
			continue
		}
		switch {
		case v.ValueFrom != nil:
			parts = append(parts, fmt.Sprintf("%s from %s (workloads.payment.env)", what, v.Name))
		case isOff(v.Name, v.Value):
		default:
			parts = append(parts, fmt.Sprintf("%s %s", what, v.Value))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "payment: " + strings.Join(parts, ", ")
}

// isOff tells whether a value leaves the fault off, as the service reads it
// (unset or zero; a value it cannot parse fails the pod, which shows in
// WorkloadsReady, so it counts as on here).
func isOff(name, value string) bool {
	if value == "" {
		return true
	}
	if name == EnvPaymentFaultErrorRatio {
		f, err := strconv.ParseFloat(value, 64)
		return err == nil && f == 0
	}
	d, err := time.ParseDuration(value)
	return err == nil && d == 0
}
