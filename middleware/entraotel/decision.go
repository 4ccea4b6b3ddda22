package entraotel

import (
	"context"
	"maps"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/entragate/entragate/middleware"
)

// decisionKey is one combination of a decision's attributes.
type decisionKey struct {
	outcome   middleware.Outcome
	reason    string
	authority string
	tenant    string
	token     string
	cached    bool
}

// decisionOptions are what recording a decision of one key takes, built
// once: slices passed with ..., so that no call allocates them.
type decisionOptions struct {
	// The decision counter is counted here and reported when metrics are
	// collected (an observable counter): an SDK counter's Add costs
	// several times the rest of a cached decision, most of it in
	// normalizing the attributes of every measurement.
	n        atomic.Int64
	count    metric.ObserveOption
	duration []metric.RecordOption
	span     []attribute.KeyValue // on the request's span
	event    []trace.EventOption
	http     []attribute.KeyValue // on otelhttp's server metrics
}

func (in *Instruments) decision(ctx context.Context, d middleware.Decision) {
	key := decisionKey{outcome: d.Outcome, reason: middleware.ReasonName(d.Reason), authority: d.Authority, token: d.Token, cached: d.Cached}
	if in.cfg.TenantAttribute {
		key.tenant = d.TenantID
	}
	opts := (*in.decisionOpts.Load())[key]
	if opts == nil {
		opts = in.newDecisionOptions(key)
	}
	opts.n.Add(1)
	in.decisionDuration.Record(ctx, d.Duration.Seconds(), opts.duration...)
	// On the request's own span, when it is recorded: no span of our own,
	// which would cost more than a cached decision.
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(opts.span...)
		span.AddEvent("entragate.decision", opts.event...)
	}
	if in.cfg.HTTPServerAttributes {
		if l, ok := otelhttp.LabelerFromContext(ctx); ok {
			l.Add(opts.http...)
		}
	}
}

// newDecisionOptions builds, and remembers, the options of key.
func (in *Instruments) newDecisionOptions(key decisionKey) *decisionOptions {
	in.optsMu.Lock()
	defer in.optsMu.Unlock()
	current := *in.decisionOpts.Load()
	if opts := current[key]; opts != nil {
		return opts
	}
	outcome := AttrOutcome.String(key.outcome.String())
	reason := AttrReason.String(key.reason)
	cached := AttrCached.Bool(key.cached)
	count := []attribute.KeyValue{outcome, reason, AttrAuthority.String(key.authority), cached, AttrTokenType.String(key.token)}
	if in.cfg.TenantAttribute {
		count = append(count, AttrTenant.String(key.tenant))
	}
	span := []attribute.KeyValue{outcome, reason, cached, AttrAuthority.String(key.authority)}
	opts := &decisionOptions{
		count:    metric.WithAttributeSet(attribute.NewSet(count...)),
		duration: []metric.RecordOption{metric.WithAttributes(outcome, cached)},
		span:     span,
		event:    []trace.EventOption{trace.WithAttributes(span...)},
		http:     []attribute.KeyValue{outcome, reason},
	}
	next := make(map[decisionKey]*decisionOptions, len(current)+1)
	maps.Copy(next, current)
	next[key] = opts
	in.decisionOpts.Store(&next)
	return opts
}

// observeDecisions reports the decision counts.
func (in *Instruments) observeDecisions(_ context.Context, o metric.Observer) error {
	for _, opts := range *in.decisionOpts.Load() {
		o.ObserveInt64(in.decisions, opts.n.Load(), opts.count)
	}
	return nil
}
