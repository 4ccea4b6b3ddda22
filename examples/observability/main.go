// Command observability is the sample /secure-data API with entragate's
// OpenTelemetry instruments, exported for Prometheus on /metrics:
//
//	cd examples/observability && go run .
//
// Configured like examples/secure-data (AZURE_TENANT_ID, AZURE_CLIENT_ID,
// or nothing for offline mode on loopback against a fake tenant), it prints
// curl lines that produce accepted, refused and forbidden decisions, and
// the one that reads /metrics. dashboard.json is a Grafana dashboard for
// what it exports.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/examples/secure-data/api"
	entragate "github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entraotel"
	"github.com/entragate/entragate/middleware/entratest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "observability:", err)
		os.Exit(1)
	}
}

func run() error {
	setup, err := demo.FromEnv(os.Stderr)
	if err != nil {
		return err
	}
	defer setup.Close()
	svc, err := newService(context.Background(), setup.Config)
	if err != nil {
		return err
	}
	defer svc.Close()
	setup.MoreHelp = printMoreHelp
	err = setup.Serve("observability", svc.Auth, svc.Handler)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// service is the API with its metrics.
type service struct {
	Auth     *entragate.Authenticator
	Handler  http.Handler
	provider *sdkmetric.MeterProvider
}

// newService builds the OpenTelemetry pipeline (an SDK MeterProvider whose
// reader is the Prometheus exporter, on a registry of its own), entragate
// with the instruments as its Observer, and the API's routes with
// /metrics, all inside otelhttp, whose server metrics then carry the
// guard's outcome.
func newService(ctx context.Context, cfg entragate.Config) (*service, error) {
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	inst, err := entraotel.New(entraotel.Config{MeterProvider: mp, HTTPServerAttributes: true})
	if err != nil {
		return nil, err
	}
	cfg.Observer = inst.Observer()
	cfg.HTTPClient = inst.HTTPClient(cfg.HTTPClient)
	auth, err := entragate.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := inst.ObserveCache("secure-data", auth); err != nil {
		auth.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.Handle("/", api.Routes(auth))
	return &service{Auth: auth, provider: mp,
		Handler: otelhttp.NewHandler(mux, "secure-data", otelhttp.WithMeterProvider(mp))}, nil
}

// Close stops entragate and the metrics pipeline.
func (s *service) Close() {
	s.Auth.Close()
	_ = s.provider.Shutdown(context.Background())
}

// printMoreHelp prints, after the sample API's curl lines, an expired
// token (a refused decision) and the metrics.
func printMoreHelp(w io.Writer, t *entratest.Tenant, base string) {
	lines := []string{
		"# an expired token (401 invalid_token: a refused decision)",
		`curl -i -H "Authorization: Bearer ` + t.AccessToken(entratest.Scopes(demo.ReadScope), entratest.Expired()) + `" ` + base + "/secure-data",
		"# what entragate measured, for Prometheus",
		"curl -s " + base + "/metrics | grep '^entragate_'",
		"",
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}
