// Package tracing is Agora's OpenTelemetry tracing: one tracer provider
// per process (Provider), whose spans go to an in-process store of recent
// traces (always on; Recent) and, when the standard OTEL_* environment
// names an endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), to that collector over OTLP/HTTP.
// The sampler is the one OTEL_TRACES_SAMPLER names, read as the SDK reads
// it (default: follow the parent, sample roots), and SetEnabled turns
// sampling off and on while the process runs. Contexts cross processes as
// W3C trace context.
package tracing

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ServiceKey is the attribute naming the context (or "gateway") a span
// ran in: one process may run several.
const ServiceKey = attribute.Key("agora.service")

// Propagator carries trace context in W3C traceparent and tracestate.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

var (
	once     sync.Once
	provider *sdktrace.TracerProvider
	recent   *Store
)

// Provider returns the process's tracer provider, made on first use: its
// spans go to the in-process store (Recent) and, if the environment names
// an OTLP endpoint, to that collector.
func Provider() *sdktrace.TracerProvider {
	once.Do(func() {
		recent = NewStore(DefaultMaxTraces, DefaultMaxBytes)
		opts := []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(recent)}
		if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
			exp, err := otlptracehttp.New(context.Background())
			if err != nil {
				slog.Default().Warn("tracing: no OTLP exporter", "err", err)
			} else {
				opts = append(opts, sdktrace.WithBatcher(exp))
			}
		}
		res, err := resource.New(context.Background(), resource.WithFromEnv(), resource.WithTelemetrySDK(),
			resource.WithAttributes(attribute.String("service.name", serviceName())))
		if err == nil {
			opts = append(opts, sdktrace.WithResource(res))
		}
		opts = append(opts, sdktrace.WithSampler(switchable{samplerFromEnv()}))
		provider = sdktrace.NewTracerProvider(opts...)
		otel.SetTracerProvider(provider)
		otel.SetTextMapPropagator(Propagator)
	})
	return provider
}

// off turns sampling off (SetEnabled).
var off atomic.Bool

// SetEnabled turns tracing on (the default) or off while the process
// runs: off, every span is left unsampled (as OTEL_TRACES_SAMPLER=
// always_off would have it), so nothing is recorded and nothing that
// checks for a sampled trace starts a span. Benchmarks use it to measure
// what tracing costs.
func SetEnabled(on bool) { off.Store(!on) }

// Enabled reports whether tracing is on (SetEnabled).
func Enabled() bool { return !off.Load() }

// switchable is the sampler of the environment, unless SetEnabled turned
// sampling off.
type switchable struct{ sdktrace.Sampler }

func (s switchable) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if off.Load() {
		return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
	}
	return s.Sampler.ShouldSample(p)
}

// samplerFromEnv is the sampler OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG name, as the SDK would read them (default:
// follow the parent, sample roots).
func samplerFromEnv() sdktrace.Sampler {
	ratio := func() float64 {
		r, err := strconv.ParseFloat(os.Getenv("OTEL_TRACES_SAMPLER_ARG"), 64)
		if err != nil || r < 0 || r > 1 {
			return 1
		}
		return r
	}
	switch name := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER"))); name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio())
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio()))
	default:
		slog.Default().Warn("tracing: unknown OTEL_TRACES_SAMPLER; following the parent, sampling roots", "sampler", name)
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}

func serviceName() string {
	if s := os.Getenv("OTEL_SERVICE_NAME"); s != "" {
		return s
	}
	return "agora"
}

// Recent returns the process's store of recent traces.
func Recent() *Store {
	Provider()
	return recent
}

// Tracer returns the tracer of instrumentation scope name.
func Tracer(name string) trace.Tracer {
	return Provider().Tracer("github.com/agora-commerce/agora/" + name)
}

// Extract returns ctx with the remote span context traceparent names (if
// it names a valid one) as its parent.
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return Propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// TraceParent returns the traceparent of ctx's span ("" if none).
func TraceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	Propagator.Inject(ctx, c)
	return c["traceparent"]
}
