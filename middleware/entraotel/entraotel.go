// Package entraotel turns entragate's Observer into OpenTelemetry metrics
// and trace data: token decisions, key document loads, the token cache and
// tenant admission calls, with bounded attributes only. It is a module of
// its own, so that users of entragate who do not use OpenTelemetry never
// download it.
//
//	inst, err := entraotel.New(entraotel.Config{}) // the global MeterProvider and TracerProvider
//	cfg.Observer = inst.Observer()                 // middleware.Config or ProviderConfig (its verifiers report to it too)
//	cfg.HTTPClient = inst.HTTPClient(nil)          // client spans for key document fetches
//	auth, err := middleware.New(ctx, cfg)
//	inst.ObserveCache("orders", auth)              // the token cache's gauges
//
// The instruments, their units and attributes are listed in the README's
// "Running it in production" section.
package entraotel

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/entragate/entragate/middleware"
)

// instrumentationName is the instrumentation scope of every instrument and
// span.
const instrumentationName = "github.com/entragate/entragate/middleware/entraotel"

// Attribute keys. Their values are bounded by the configuration: outcomes
// and reasons are fixed sets, authorities and documents those configured.
// None is a token, a user or an object ID.
const (
	AttrOutcome   = attribute.Key("entragate.outcome")    // accepted, refused, unavailable
	AttrReason    = attribute.Key("entragate.reason")     // middleware.ReasonName: token_expired, insufficient_scope...
	AttrAuthority = attribute.Key("entragate.authority")  // Authority.String(); "" before the issuer was known
	AttrCached    = attribute.Key("entragate.cached")     // answered from the cache of verified tokens
	AttrTokenType = attribute.Key("entragate.token.type") // access or id
	AttrTenant    = attribute.Key("entragate.tenant.id")  // only with Config.TenantAttribute
	AttrDocument  = attribute.Key("entragate.document")   // v1.0, v2.0, or the B2C policy
	AttrResult    = attribute.Key("entragate.result")     // success, failure; admitted, refused, error
	AttrAPI       = attribute.Key("entragate.api")        // the name given to ObserveCache
)

// DurationBuckets are the decision duration histogram's boundaries, in
// seconds: fine enough for a cached hit (about 0.5 µs) and a first
// verification (about 100 µs), up to a key load waited for.
var DurationBuckets = []float64{
	2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
	1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Config configures the instruments. The zero value uses the global
// providers and records no tenant.
type Config struct {
	// MeterProvider and TracerProvider default to otel's global ones.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider

	// TenantAttribute adds the token's tenant ID to the decision counter.
	// Off by default: a multi-tenant API that admits tenants by a Check or
	// AllowAnyTenant sees as many tenants as there are in the world, and
	// each would be a series of its own. Hashing the ID, as the Kubernetes
	// authenticator does for issuers, hides it but bounds nothing, so the
	// choice is whether to have it at all. Set it when the tenants are few
	// and known: one tenant, or an AllowedTenantIDs list.
	TenantAttribute bool

	// HTTPServerAttributes adds entragate.outcome and entragate.reason to
	// the HTTP server metrics of otelhttp, when RequireAuth runs inside
	// otelhttp.NewHandler (which puts a Labeler in the request's context),
	// so that its request counts and durations can be split by what the
	// guard decided. Without otelhttp around it, it costs one allocation
	// per request (otelhttp's LabelerFromContext makes an empty Labeler).
	HTTPServerAttributes bool
}

// Instruments are entragate's OpenTelemetry instruments.
type Instruments struct {
	cfg    Config
	meter  metric.Meter
	tracer trace.Tracer

	decisions        metric.Int64ObservableCounter
	decisionDuration metric.Float64Histogram
	loads            metric.Int64Counter
	loadDuration     metric.Float64Histogram
	admissions       metric.Int64Counter
	admissionTime    metric.Float64Histogram

	// Options for each combination of attributes seen, precomputed so
	// that recording allocates nothing: read without locks, replaced as a
	// whole when a new combination appears (rarely, after the first
	// requests).
	decisionOpts atomic.Pointer[map[decisionKey]*decisionOptions]
	optsMu       sync.Mutex

	docsMu sync.Mutex
	docs   map[documentKey]documentState
}

// New creates the instruments on cfg's MeterProvider.
func New(cfg Config) (*Instruments, error) {
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	in := &Instruments{
		cfg:    cfg,
		meter:  cfg.MeterProvider.Meter(instrumentationName),
		tracer: cfg.TracerProvider.Tracer(instrumentationName),
		docs:   map[documentKey]documentState{},
	}
	empty := map[decisionKey]*decisionOptions{}
	in.decisionOpts.Store(&empty)
	if err := in.createDecisionInstruments(); err != nil {
		return nil, err
	}
	if err := in.createDocumentInstruments(); err != nil {
		return nil, err
	}
	if err := in.createAdmissionInstruments(); err != nil {
		return nil, err
	}
	return in, nil
}

func (in *Instruments) createDecisionInstruments() error {
	var err, e error
	in.decisions, e = in.meter.Int64ObservableCounter("entragate.token.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Token decisions, by outcome, reason, authority, cache use and token type."))
	err = errors.Join(err, e)
	in.decisionDuration, e = in.meter.Float64Histogram("entragate.token.decision.duration", metric.WithUnit("s"),
		metric.WithDescription("How long a token decision took, by outcome and cache use."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	if err = errors.Join(err, e); err != nil {
		return err
	}
	_, err = in.meter.RegisterCallback(in.observeDecisions, in.decisions)
	return err
}

func (in *Instruments) createAdmissionInstruments() error {
	var err, e error
	in.admissions, e = in.meter.Int64Counter("entragate.admission.calls", metric.WithUnit("{call}"),
		metric.WithDescription("Calls of TenantAdmission.Check, by authority and result (admitted, refused, error)."))
	err = errors.Join(err, e)
	in.admissionTime, e = in.meter.Float64Histogram("entragate.admission.duration", metric.WithUnit("s"),
		metric.WithDescription("How long a call of TenantAdmission.Check took."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	return errors.Join(err, e)
}

// Observer returns the middleware.Observer that feeds the instruments:
// give it to middleware.Config, ProviderConfig, APIConfig or
// IDTokenConfig.
func (in *Instruments) Observer() middleware.Observer {
	return middleware.Observer{Decision: in.decision, Load: in.load, Admission: in.admission}
}

// HTTPClient returns a copy of base (a new client when nil) whose requests
// are client spans of the TracerProvider: give it to Config.HTTPClient, and
// each metadata and key-set fetch is a span named "entragate key document".
func (in *Instruments) HTTPClient(base *http.Client) *http.Client {
	c := &http.Client{Timeout: 30 * time.Second}
	if base != nil {
		copied := *base
		c = &copied
	}
	c.Transport = otelhttp.NewTransport(c.Transport,
		otelhttp.WithTracerProvider(in.cfg.TracerProvider),
		otelhttp.WithMeterProvider(in.cfg.MeterProvider),
		otelhttp.WithSpanNameFormatter(func(string, *http.Request) string { return "entragate key document" }))
	return c
}

// ObserveCache reports a's token cache (entries, hits, misses, evictions)
// under the name api, e.g. the API's name. Unregister the registration
// when a closes.
func (in *Instruments) ObserveCache(api string, a *middleware.Authenticator) (metric.Registration, error) {
	var err, e error
	entries, e := in.meter.Int64ObservableGauge("entragate.token_cache.entries", metric.WithUnit("{entry}"),
		metric.WithDescription("Verified tokens held by an API's cache."))
	err = errors.Join(err, e)
	hits, e := in.meter.Int64ObservableCounter("entragate.token_cache.hits", metric.WithUnit("{hit}"),
		metric.WithDescription("Tokens answered from an API's cache."))
	err = errors.Join(err, e)
	misses, e := in.meter.Int64ObservableCounter("entragate.token_cache.misses", metric.WithUnit("{miss}"),
		metric.WithDescription("Tokens an API's cache did not hold."))
	err = errors.Join(err, e)
	evictions, e := in.meter.Int64ObservableCounter("entragate.token_cache.evictions", metric.WithUnit("{eviction}"),
		metric.WithDescription("Entries an API's cache dropped to make room."))
	if err = errors.Join(err, e); err != nil {
		return nil, err
	}
	opt := metric.WithAttributes(AttrAPI.String(api))
	return in.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := a.Stats().Cache
		o.ObserveInt64(entries, int64(st.Entries), opt)
		o.ObserveInt64(hits, st.Hits, opt)
		o.ObserveInt64(misses, st.Misses, opt)
		o.ObserveInt64(evictions, st.Evictions, opt)
		return nil
	}, entries, hits, misses, evictions)
}
