package entraotel

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/entragate/entragate/middleware"
)

// admission records a call of TenantAdmission.Check, and makes it a span
// under the request that started it (the call ran on the request's
// values, not on its cancellation, and served every request waiting).
func (in *Instruments) admission(ctx context.Context, e middleware.AdmissionEvent) {
	result := "refused"
	switch {
	case e.Err != nil:
		result = "error"
	case e.Admitted:
		result = "admitted"
	}
	attrs := metric.WithAttributes(AttrAuthority.String(e.Authority), AttrResult.String(result))
	in.admissions.Add(ctx, 1, attrs)
	in.admissionTime.Record(ctx, e.Duration.Seconds(), attrs)

	_, span := in.tracer.Start(ctx, "entragate tenant admission", trace.WithTimestamp(e.Start), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttrAuthority.String(e.Authority), AttrResult.String(result), AttrTenant.String(e.TenantID)))
	if e.Err != nil {
		// The error's text is the application's Check's: it may name
		// internal systems, so the span says only that it failed.
		span.SetStatus(codes.Error, "TenantAdmission.Check failed")
	}
	span.End(trace.WithTimestamp(e.Start.Add(e.Duration)))
}
