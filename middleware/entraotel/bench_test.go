package entraotel_test

import (
	"net/http"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entraotel"
	"github.com/entragate/entragate/middleware/entratest"
)

// The adapter's cost on a request through RequireAuth, against the same
// request with no Observer: a token seen before (the cache answers), and
// tokens never seen. Compare with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 10 | tee otel.txt
//	benchstat -col /observer otel.txt
func BenchmarkRequireAuth(b *testing.B) {
	tenant := entratest.NewTenant(b)
	headers := make([]http.Header, 512)
	for i := range headers {
		headers[i] = http.Header{"Authorization": {"Bearer " + tenant.AccessToken(entratest.Scopes("Orders.Read"), entratest.Claim("n", i))}}
	}
	inst, err := entraotel.New(entraotel.Config{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))})
	if err != nil {
		b.Fatal(err)
	}
	for _, obs := range []struct {
		name     string
		observer middleware.Observer
	}{{"none", middleware.Observer{}}, {"entraotel", inst.Observer()}} {
		for _, kind := range []struct {
			name      string
			cacheSize int
			next      func(i int) http.Header
		}{
			{"cached", 0, func(int) http.Header { return headers[0] }},
			// A cache smaller than the pool: every token is a miss.
			{"first_seen", len(headers) / 2, func(i int) http.Header { return headers[i%len(headers)] }},
		} {
			b.Run("token="+kind.name+"/observer="+obs.name, func(b *testing.B) {
				cfg := tenant.Config()
				cfg.Observer, cfg.TokenCacheSize = obs.observer, kind.cacheSize
				a, err := middleware.New(b.Context(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer a.Close()
				h := a.RequireAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if c, ok := claims.FromContext(r.Context()); !ok || c.Name == "" {
						w.WriteHeader(http.StatusInternalServerError)
					}
				}))
				req, _ := http.NewRequest(http.MethodGet, "/orders", nil)
				w := &nopWriter{h: http.Header{}}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					req.Header = kind.next(i)
					h.ServeHTTP(w, req)
					if w.code != 0 {
						b.Fatalf("status %d", w.code)
					}
				}
			})
		}
	}
}

type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }
