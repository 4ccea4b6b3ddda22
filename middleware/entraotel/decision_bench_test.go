package entraotel_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entraotel"
)

// BenchmarkDecision is the adapter's own work for one decision.
func BenchmarkDecision(b *testing.B) {
	inst, err := entraotel.New(entraotel.Config{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))})
	if err != nil {
		b.Fatal(err)
	}
	obs := inst.Observer()
	d := middleware.Decision{Outcome: middleware.Accepted, Status: 200, Token: "access", Authority: "https://login.microsoftonline.com/t", Cached: true, Duration: 400 * time.Nanosecond}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		obs.Decision(ctx, d)
	}
}
