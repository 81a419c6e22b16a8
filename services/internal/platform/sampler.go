package platform

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

type withoutTracingKey struct{}

// WithoutTracing marks ctx so that no span starts under it: readiness
// checks (a database ping, a peer's /healthz) run every few seconds per pod
// and would otherwise each start a trace. The sampler drops those spans, so
// the W3C traceparent sent on with them says "not sampled" and the peers'
// parent-based samplers drop their side too.
func WithoutTracing(ctx context.Context) context.Context {
	return context.WithValue(ctx, withoutTracingKey{}, true)
}

func tracingOff(ctx context.Context) bool {
	off, _ := ctx.Value(withoutTracingKey{}).(bool)
	return off
}

// untracedSampler drops every span started under WithoutTracing and asks
// the configured sampler about the rest.
type untracedSampler struct{ next sdktrace.Sampler }

func (s untracedSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if tracingOff(p.ParentContext) {
		return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
	}
	return s.next.ShouldSample(p)
}

func (s untracedSampler) Description() string {
	return "WithoutTracing{" + s.next.Description() + "}"
}

// samplerFromEnv reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG as the
// SDK does (which it stops doing once a sampler is given explicitly); unset
// means the SDK's default, parentbased_always_on. Unlike the SDK, a value it
// cannot use is an error instead of a silent fallback to sampling everything.
func samplerFromEnv() (sdktrace.Sampler, error) {
	name := strings.ToLower(strings.TrimSpace(Getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(Getenv("OTEL_TRACES_SAMPLER_ARG"))
	ratio := func() (sdktrace.Sampler, error) {
		if arg == "" {
			return sdktrace.TraceIDRatioBased(1), nil
		}
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || v < 0 || v > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: want a ratio in [0, 1], got %q", arg)
		}
		return sdktrace.TraceIDRatioBased(v), nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		return ratio()
	case "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(r), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER: unsupported %q (want always_on, always_off, traceidratio or their parentbased_ forms)", name)
}
