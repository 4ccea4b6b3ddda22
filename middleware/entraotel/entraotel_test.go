package entraotel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entraotel"
	"github.com/entragate/entragate/middleware/entratest"
)

// harness is an API behind entragate with the instruments on SDK providers
// whose data the test reads.
type harness struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	inst   *entraotel.Instruments
	auth   *middleware.Authenticator
	tenant *entratest.Tenant
}

func newHarness(t *testing.T, cfg entraotel.Config, edit ...func(*middleware.Config)) *harness {
	t.Helper()
	h := &harness{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	cfg.TracerProvider = h.tp
	var err error
	if h.inst, err = entraotel.New(cfg); err != nil {
		t.Fatal(err)
	}
	h.tenant = entratest.NewTenant(t)
	mc := h.tenant.Config()
	mc.Observer = h.inst.Observer()
	mc.HTTPClient = h.inst.HTTPClient(nil)
	for _, e := range edit {
		e(&mc)
	}
	if h.auth, err = middleware.New(t.Context(), mc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.auth.Close() })
	if _, err := h.inst.ObserveCache("orders", h.auth); err != nil {
		t.Fatal(err)
	}
	return h
}

// collect returns the metrics by name.
func (h *harness) collect(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// sumOf adds the counter's points whose attributes include want.
func sumOf(t *testing.T, m metricdata.Metrics, want ...attribute.KeyValue) int64 {
	t.Helper()
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is %T, not an int64 sum", m.Name, m.Data)
	}
	var n int64
	for _, p := range sum.DataPoints {
		if hasAll(p.Attributes, want) {
			n += p.Value
		}
	}
	return n
}

func hasAll(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

func TestDecisionMetrics(t *testing.T) {
	h := newHarness(t, entraotel.Config{})
	srv := httptest.NewServer(h.auth.RequireAuth(middleware.RequireAnyScope("Orders.Read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))))
	t.Cleanup(srv.Close)
	good := h.tenant.AccessToken(entratest.Scopes("Orders.Read"))
	for _, tok := range []string{good, good, good, h.tenant.AccessToken(entratest.Scopes("Other")), h.tenant.AccessToken(entratest.Expired()), ""} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	m := h.collect(t)
	decisions := m["entragate.token.decisions"]
	authority := entraotel.AttrAuthority.String(h.tenant.Authority().String())
	for _, tc := range []struct {
		name string
		want []attribute.KeyValue
		n    int64
	}{
		{"accepted, first sight", []attribute.KeyValue{entraotel.AttrOutcome.String("accepted"), entraotel.AttrCached.Bool(false), authority, entraotel.AttrTokenType.String("access")}, 1},
		{"accepted from the cache", []attribute.KeyValue{entraotel.AttrOutcome.String("accepted"), entraotel.AttrCached.Bool(true), entraotel.AttrReason.String("")}, 2},
		{"forbidden", []attribute.KeyValue{entraotel.AttrOutcome.String("refused"), entraotel.AttrReason.String("insufficient_scope"), authority}, 1},
		{"expired", []attribute.KeyValue{entraotel.AttrOutcome.String("refused"), entraotel.AttrReason.String("token_expired"), entraotel.AttrAuthority.String("")}, 1},
		{"no token", []attribute.KeyValue{entraotel.AttrOutcome.String("refused"), entraotel.AttrReason.String("missing_token")}, 1},
	} {
		if got := sumOf(t, decisions, tc.want...); got != tc.n {
			t.Errorf("%s: %d decisions, want %d", tc.name, got, tc.n)
		}
	}
	hist, ok := m["entragate.token.decision.duration"].Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("no duration histogram: %+v", m["entragate.token.decision.duration"])
	}
	var count uint64
	for _, p := range hist.DataPoints {
		count += p.Count
		for _, kv := range p.Attributes.ToSlice() {
			if kv.Key != entraotel.AttrOutcome && kv.Key != entraotel.AttrCached {
				t.Errorf("duration histogram attribute %s: want outcome and cached only", kv.Key)
			}
		}
		if !slices.Equal(p.Bounds, entraotel.DurationBuckets) {
			t.Errorf("bounds %v", p.Bounds)
		}
	}
	if count != 6 {
		t.Errorf("%d durations recorded for 6 requests", count)
	}
	if got := sumOf(t, m["entragate.token_cache.hits"], entraotel.AttrAPI.String("orders")); got != 2 {
		t.Errorf("cache hits %d, want 2 (the good token's second and third requests)", got)
	}
	assertBounded(t, m, h.tenant)
}

// assertBounded checks that no attribute value anywhere is a token, a
// user's object ID or name, or (without TenantAttribute) a tenant ID
// other than inside the configured authority's name.
func assertBounded(t *testing.T, m map[string]metricdata.Metrics, tenant *entratest.Tenant) {
	t.Helper()
	for name, metric := range m {
		var sets []attribute.Set
		switch d := metric.Data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		case metricdata.Gauge[int64]:
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		case metricdata.Gauge[float64]:
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		}
		for _, s := range sets {
			for _, kv := range s.ToSlice() {
				v := kv.Value.String()
				switch {
				case strings.Contains(v, "eyJ"), strings.Contains(v, tenant.User.ObjectID), strings.Contains(v, tenant.User.Name):
					t.Errorf("%s: attribute %s=%q names a token or a user", name, kv.Key, v)
				case kv.Key == entraotel.AttrTenant:
					t.Errorf("%s: a tenant attribute without TenantAttribute", name)
				}
			}
		}
	}
}

func TestTenantAttributeIsOptIn(t *testing.T) {
	h := newHarness(t, entraotel.Config{TenantAttribute: true})
	if _, err := h.auth.Validate(t.Context(), h.tenant.AccessToken()); err != nil {
		t.Fatal(err)
	}
	if got := sumOf(t, h.collect(t)["entragate.token.decisions"], entraotel.AttrTenant.String(h.tenant.ID)); got != 1 {
		t.Errorf("decisions with the tenant attribute: %d, want 1", got)
	}
}

func TestDocumentMetrics(t *testing.T) {
	h := newHarness(t, entraotel.Config{})
	m := h.collect(t)
	authority := entraotel.AttrAuthority.String(h.tenant.Authority().String())
	for _, doc := range []string{"v2.0", "v1.0"} {
		want := []attribute.KeyValue{authority, entraotel.AttrDocument.String(doc)}
		if got := sumOf(t, m["entragate.key_document.loads"], append(want, entraotel.AttrResult.String("success"))...); got != 1 {
			t.Errorf("%s: %d successful loads, want 1", doc, got)
		}
		last, ok := m["entragate.key_document.last_success"].Data.(metricdata.Gauge[float64])
		if !ok || !slices.ContainsFunc(last.DataPoints, func(p metricdata.DataPoint[float64]) bool { return hasAll(p.Attributes, want) && p.Value > 1.7e9 }) {
			t.Errorf("%s: no last-success time: %+v", doc, m["entragate.key_document.last_success"].Data)
		}
		keys, ok := m["entragate.key_document.keys"].Data.(metricdata.Gauge[int64])
		if !ok || !slices.ContainsFunc(keys.DataPoints, func(p metricdata.DataPoint[int64]) bool { return hasAll(p.Attributes, want) && p.Value >= 1 }) {
			t.Errorf("%s: no key count: %+v", doc, m["entragate.key_document.keys"].Data)
		}
	}
	// Each fetch was a client span of the TracerProvider.
	fetches := 0
	for _, s := range h.spans.Ended() {
		if s.Name() == "entragate key document" {
			fetches++
		}
	}
	if fetches != 4 {
		t.Errorf("%d key document spans for two documents (metadata and keys each), want 4", fetches)
	}
}

// The decision is recorded on the request's own span, and makes no span of
// its own.
func TestDecisionOnTheRequestSpan(t *testing.T) {
	h := newHarness(t, entraotel.Config{})
	before := len(h.spans.Ended())
	ctx, span := h.tp.Tracer("test").Start(context.Background(), "GET /orders")
	req := httptest.NewRequest(http.MethodGet, "/orders", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+h.tenant.AccessToken(entratest.Scopes("Orders.Read")))
	h.auth.RequireAuth(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(httptest.NewRecorder(), req)
	span.End()
	ended := h.spans.Ended()
	if len(ended) != before+1 {
		t.Fatalf("%d spans ended for one request, want only the request's", len(ended)-before)
	}
	got := ended[len(ended)-1]
	if !hasAll(attribute.NewSet(got.Attributes()...), []attribute.KeyValue{entraotel.AttrOutcome.String("accepted"), entraotel.AttrCached.Bool(false)}) {
		t.Errorf("span attributes %v", got.Attributes())
	}
	if ev := got.Events(); len(ev) != 1 || ev[0].Name != "entragate.decision" {
		t.Errorf("span events %+v", ev)
	}
}

func TestAdmissionCallsAreMeasuredAndTraced(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	apiID := entratest.NewGUID()
	admitted, refused, failing := srv.NewTenant(entratest.WithClientID(apiID)), srv.NewTenant(entratest.WithClientID(apiID)), srv.NewTenant(entratest.WithClientID(apiID))
	check := func(_ context.Context, tid string) (bool, error) {
		switch tid {
		case admitted.ID:
			return true, nil
		case failing.ID:
			return false, errors.New("database down at db.internal:5432")
		}
		return false, nil
	}
	h := newHarness(t, entraotel.Config{}, func(c *middleware.Config) {
		c.ClientID = apiID
		c.Authorities = []middleware.Authority{middleware.EntraMultiTenant(middleware.Organizations, middleware.TenantAdmission{Check: check}).WithHost(srv.URL)}
	})
	for _, tenant := range []*entratest.Tenant{admitted, refused, failing} {
		_, _ = h.auth.Validate(t.Context(), tenant.AccessToken())
	}
	calls := h.collect(t)["entragate.admission.calls"]
	for result, n := range map[string]int64{"admitted": 1, "refused": 1, "error": 1} {
		if got := sumOf(t, calls, entraotel.AttrResult.String(result)); got != n {
			t.Errorf("%s calls: %d, want %d", result, got, n)
		}
	}
	var admissions []sdktrace.ReadOnlySpan
	for _, s := range h.spans.Ended() {
		if s.Name() == "entragate tenant admission" {
			admissions = append(admissions, s)
		}
	}
	if len(admissions) != 3 {
		t.Fatalf("%d admission spans, want 3", len(admissions))
	}
	for _, s := range admissions {
		if strings.Contains(s.Status().Description, "db.internal") {
			t.Errorf("the span carries Check's error text: %q", s.Status().Description)
		}
	}
}

// With otelhttp around RequireAuth, its server metrics carry the decision.
func TestHTTPServerMetricsCarryTheOutcome(t *testing.T) {
	h := newHarness(t, entraotel.Config{HTTPServerAttributes: true})
	httpMetrics := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(httpMetrics))
	handler := otelhttp.NewHandler(h.auth.RequireAuth(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})), "orders",
		otelhttp.WithMeterProvider(mp), otelhttp.WithTracerProvider(h.tp))
	for _, tok := range []string{h.tenant.AccessToken(), h.tenant.AccessToken(entratest.Expired())} {
		req := httptest.NewRequest(http.MethodGet, "/orders", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		handler.ServeHTTP(httptest.NewRecorder(), req)
	}
	var rm metricdata.ResourceMetrics
	if err := httpMetrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			hist, ok := m.Data.(metricdata.Histogram[float64])
			if m.Name != "http.server.request.duration" || !ok {
				continue
			}
			for _, p := range hist.DataPoints {
				if v, ok := p.Attributes.Value(entraotel.AttrOutcome); ok {
					r, _ := p.Attributes.Value(entraotel.AttrReason)
					found[v.AsString()+"/"+r.AsString()] = true
				}
			}
		}
	}
	if !found["accepted/"] || !found["refused/token_expired"] {
		t.Errorf("otelhttp's request durations by outcome: %v", found)
	}
}
