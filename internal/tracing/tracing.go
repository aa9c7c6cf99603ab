// Package tracing sets up OpenTelemetry tracing for theaterd: off unless
// OTEL_EXPORTER_OTLP_ENDPOINT is set, then a span per HTTP request
// (otelhttp, in internal/httpapi), per Redis round trip (redisx's
// CommandObserver, see RedisObserver) and per SQL query (otelsql, in
// internal/sqlstore), each carrying the request's id, exported over
// OTLP/HTTP. The exporter and SDK read the standard OTEL_* variables
// themselves (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER, OTEL_EXPORTER_OTLP_HEADERS, …).
//
//	tp, err := tracing.Start(ctx, tracing.Options{RequestID: httpapi.RequestID})
//	defer tp.Shutdown(ctx)
//	rcfg.CommandObserver = tracing.RedisObserver(tp)
//	deps.TracerProvider = tp
package tracing

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName names the tracer of the spans this package makes.
const ScopeName = "github.com/theaterscriptpro/tsp/internal/tracing"

// AttrRequestID is the attribute that carries a span's request id (the
// X-Request-ID of the response).
const AttrRequestID = "http.request.id"

// Options configures Start. The zero value is usable.
type Options struct {
	// ServiceName is the service.name of every span unless
	// OTEL_SERVICE_NAME says otherwise. The default is "theaterd".
	ServiceName string

	// ServiceVersion is service.version; empty leaves it out.
	ServiceVersion string

	// RequestID returns the request id carried by a context (for theaterd,
	// httpapi.RequestID), or "". Every span started under such a context
	// gets it as AttrRequestID. Nil: no request ids.
	RequestID func(context.Context) string

	// BatchTimeout is how long spans wait to be sent together. The default
	// is the SDK's (OTEL_BSP_SCHEDULE_DELAY, else 5 s).
	BatchTimeout time.Duration
}

// Provider is the running tracer provider. Shutdown flushes it.
type Provider struct {
	*sdktrace.TracerProvider
}

// Start builds the OTLP/HTTP exporter from the OTEL_* environment, makes
// the provider and installs it (and the W3C trace-context propagator) as
// OpenTelemetry's global, which otelsql uses. Call it only when tracing is
// on (OTEL_EXPORTER_OTLP_ENDPOINT set); call Shutdown when done.
func Start(ctx context.Context, o Options) (*Provider, error) {
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	name := o.ServiceName
	if name == "" {
		name = "theaterd"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if o.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", o.ServiceVersion))
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the defaults given here.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	var bopts []sdktrace.BatchSpanProcessorOption
	if o.BatchTimeout > 0 {
		bopts = append(bopts, sdktrace.WithBatchTimeout(o.BatchTimeout))
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if o.RequestID != nil {
		opts = append(opts, sdktrace.WithSpanProcessor(requestIDProcessor{o.RequestID}))
	}
	opts = append(opts, sdktrace.WithBatcher(exp, bopts...))
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return &Provider{tp}, nil
}

// requestIDProcessor stamps each span started under a request's context
// with its id: the one place that links Redis and SQL spans to the
// request's X-Request-ID, whoever starts them.
type requestIDProcessor struct {
	id func(context.Context) string
}

func (p requestIDProcessor) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	if id := p.id(parent); id != "" {
		s.SetAttributes(attribute.String(AttrRequestID, id))
	}
}

func (requestIDProcessor) OnEnd(sdktrace.ReadOnlySpan)      {}
func (requestIDProcessor) Shutdown(context.Context) error   { return nil }
func (requestIDProcessor) ForceFlush(context.Context) error { return nil }

// RedisObserver returns a redisx.Config.CommandObserver that makes a client
// span of each Redis round trip: named after the command ("GET",
// "EVALSHA"), or "PIPELINE" with the commands as an attribute, never with
// arguments (keys may name users, values hold sessions).
func RedisObserver(tp trace.TracerProvider) func(ctx context.Context, names []string, start time.Time, err error) {
	tracer := tp.Tracer(ScopeName)
	return func(ctx context.Context, names []string, start time.Time, err error) {
		name := names[0]
		attrs := []attribute.KeyValue{attribute.String("db.system.name", "redis")}
		if len(names) > 1 {
			name = "PIPELINE"
			attrs = append(attrs, attribute.StringSlice("db.operation.batch.names", names),
				attribute.Int("db.operation.batch.size", len(names)))
		}
		attrs = append(attrs, attribute.String("db.operation.name", name))
		_, span := tracer.Start(ctx, name, trace.WithTimestamp(start),
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
		if err != nil {
			span.SetStatus(codes.Error, "redis call failed")
			span.SetAttributes(attribute.String("error.type", fmt.Sprintf("%T", err)))
		}
		span.End()
	}
}
