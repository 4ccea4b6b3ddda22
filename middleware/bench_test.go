package middleware_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// Benchmarks of a full request through RequireAuth into a handler that
// reads the caller's name, and of the floor any verifier pays for a token
// it has never seen. Compare runs with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 10 ./middleware > new.txt
//	benchstat old.txt new.txt
//
// examples/benchpeers runs the same request through other Go libraries.

// benchTokens is a pool of distinct valid tokens, minted once per process:
// a first-seen benchmark needs a token the cache has not seen on every
// iteration, and minting costs an RSA signature.
var benchTokens struct {
	once   sync.Once
	tenant *entratest.Tenant
	tokens []string
}

const benchPoolSize = 2048

func benchSetup(b *testing.B) (*entratest.Tenant, []string) {
	benchTokens.once.Do(func() {
		srv := entratest.NewServer()
		benchTokens.tenant = srv.NewTenant()
		t := benchTokens.tenant
		for i := range benchPoolSize {
			benchTokens.tokens = append(benchTokens.tokens, t.AccessToken(
				entratest.Scopes("SecureData.Read", "User.Read"),
				entratest.Claim("sid", entratest.NewGUID()),
				entratest.Claim("xms_tcdt", 1615375629+i)))
		}
	})
	return benchTokens.tenant, benchTokens.tokens
}

// nameHandler reads the caller's name, as a real handler would.
var nameHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, ok := claims.FromContext(r.Context())
	if !ok || c.Name == "" {
		w.WriteHeader(http.StatusInternalServerError)
	}
})

// nopWriter is a ResponseWriter that does nothing, so that the benchmark
// measures the middleware, not a recorder.
type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }

// observed is an Observer doing what an exporter's cheapest work would:
// reading the decision.
var observed = middleware.Observer{Decision: func(_ context.Context, d middleware.Decision) {
	if d.Outcome == 0 {
		panic("no outcome")
	}
}}

func benchAuth(b *testing.B, tenant *entratest.Tenant, cacheSize int, obs ...middleware.Observer) http.Handler {
	cfg := middleware.Config{ClientID: tenant.ClientID, Authorities: []middleware.Authority{tenant.Authority()}, TokenCacheSize: cacheSize}
	if len(obs) > 0 {
		cfg.Observer = obs[0]
	}
	a, err := middleware.New(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return a.RequireAuth(nameHandler)
}

func BenchmarkRequireAuth(b *testing.B) {
	tenant, tokens := benchSetup(b)
	headerPool := func() []http.Header {
		headers := make([]http.Header, len(tokens))
		for i, tok := range tokens {
			headers[i] = http.Header{"Authorization": {"Bearer " + tok}}
		}
		return headers
	}
	one := http.Header{"Authorization": {"Bearer " + tokens[0]}}

	// A token never seen before: the pool is larger than the cache, so
	// cycling through it always misses, and each miss also pays for
	// entering the cache.
	b.Run("first_seen", func(b *testing.B) {
		h := benchAuth(b, tenant, benchPoolSize/2)
		headers := headerPool()
		var i int
		serial(b, h, func() http.Header { i++; return headers[i%len(headers)] })
	})
	b.Run("first_seen_parallel", func(b *testing.B) {
		h := benchAuth(b, tenant, benchPoolSize/2)
		headers := headerPool()
		var i atomic.Int64
		parallel(b, h, func() http.Header { return headers[int(i.Add(1))%len(headers)] })
	})
	b.Run("repeated", func(b *testing.B) {
		h := benchAuth(b, tenant, 0)
		serial(b, h, func() http.Header { return one })
	})
	b.Run("repeated_parallel", func(b *testing.B) {
		h := benchAuth(b, tenant, 0)
		parallel(b, h, func() http.Header { return one })
	})
	b.Run("no_cache", func(b *testing.B) {
		h := benchAuth(b, tenant, -1)
		serial(b, h, func() http.Header { return one })
	})
	// The cost of an Observer: what RequireAuth adds to report each
	// decision, on a repeated and on a first-seen token.
	b.Run("repeated_observed", func(b *testing.B) {
		h := benchAuth(b, tenant, 0, observed)
		serial(b, h, func() http.Header { return one })
	})
	b.Run("first_seen_observed", func(b *testing.B) {
		h := benchAuth(b, tenant, benchPoolSize/2, observed)
		headers := headerPool()
		var i int
		serial(b, h, func() http.Header { i++; return headers[i%len(headers)] })
	})
}

func serial(b *testing.B, h http.Handler, header func() http.Header) {
	req, _ := http.NewRequest(http.MethodGet, "/secure-data", nil)
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		req.Header = header()
		h.ServeHTTP(w, req)
		if w.code != 0 {
			b.Fatalf("status %d", w.code)
		}
	}
}

func parallel(b *testing.B, h http.Handler, header func() http.Header) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, "/secure-data", nil)
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			req.Header = header()
			h.ServeHTTP(w, req)
			if w.code != 0 {
				b.Errorf("status %d", w.code)
				return
			}
		}
	})
}

// floorClaims are the claims a verifier must decode to decide on an Entra
// access token, decoded with the standard library.
type floorClaims struct {
	Ver   string          `json:"ver"`
	Iss   string          `json:"iss"`
	Aud   json.RawMessage `json:"aud"`
	Tid   string          `json:"tid"`
	Oid   string          `json:"oid"`
	Sub   string          `json:"sub"`
	Name  string          `json:"name"`
	Azp   string          `json:"azp"`
	Scp   string          `json:"scp"`
	Roles []string        `json:"roles"`
	Exp   int64           `json:"exp"`
	Nbf   int64           `json:"nbf"`
	Iat   int64           `json:"iat"`
}

// BenchmarkFloor is what any verifier must pay for a token it has never
// seen: SHA-256 of the signing input, an RSA-2048 PKCS#1 v1.5
// verification, and decoding the claims. Like first_seen, it cycles
// through the pool, so neither reads a token its CPU caches already hold.
func BenchmarkFloor(b *testing.B) {
	tenant, tokens := benchSetup(b)
	pub := tenant.Server().SigningKey().PublicKey()
	b.ReportAllocs()
	var i int
	for b.Loop() {
		i++
		tok := tokens[i%len(tokens)]
		dot := strings.LastIndexByte(tok, '.')
		first := strings.IndexByte(tok, '.')
		sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
		if err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256([]byte(tok[:dot]))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			b.Fatal(err)
		}
		payload, err := base64.RawURLEncoding.DecodeString(tok[first+1 : dot])
		if err != nil {
			b.Fatal(err)
		}
		var c floorClaims
		if err := json.Unmarshal(payload, &c); err != nil || c.Name == "" {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashToken is what keying a cache by a hash would cost per
// request; the cache keys by the token itself instead.
func BenchmarkHashToken(b *testing.B) {
	_, tokens := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = sha256.Sum256([]byte(tokens[0]))
	}
}

func BenchmarkValidate(b *testing.B) {
	tenant := entratest.NewTenant(b)
	a := newAuth(b, tenant, func(c *middleware.Config) { c.TokenCacheSize = -1 })
	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid_v2", tenant.AccessToken(), true},
		{"valid_v1", tenant.AccessToken(entratest.V1()), true},
		{"expired", tenant.AccessToken(entratest.Expired()), false},
		{"wrong_audience", tenant.AccessToken(entratest.Audience("other")), false},
		{"bad_signature", tenant.AccessToken(entratest.SignedWith(tenant.Server().NewKey()), entratest.Header("kid", tenant.Server().SigningKey().ID)), false},
		{"garbage", "not.a.token", false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Validate(b.Context(), c.token); (err == nil) != c.ok {
					b.Fatalf("unexpected result: %v", err)
				}
			}
		})
	}
}

// BenchmarkCacheFootprint fills a cache with the pool's distinct tokens
// and reports the live heap each entry costs: tokens, claims, bookkeeping.
// A full default cache costs DefaultTokenCacheSize times that.
func BenchmarkCacheFootprint(b *testing.B) {
	tenant, tokens := benchSetup(b)
	for b.Loop() {
		a, err := middleware.New(b.Context(), middleware.Config{
			ClientID: tenant.ClientID, Authorities: []middleware.Authority{middleware.EntraTenant(tenant.ID).WithHost(tenant.Server().URL)}, TokenCacheSize: len(tokens),
		})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, tok := range tokens {
			if _, err := a.Validate(b.Context(), tok); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if n := a.Stats().Cache.Entries; n != len(tokens) {
			b.Fatalf("%d entries cached, want %d", n, len(tokens))
		}
		perEntry := float64(after.HeapAlloc-before.HeapAlloc) / float64(len(tokens))
		b.ReportMetric(perEntry, "B/entry")
		b.ReportMetric(perEntry*middleware.DefaultTokenCacheSize/(1<<20), "MiB/default-cache")
		b.ReportMetric(float64(len(tokens[0])), "B/token")
		a.Close()
	}
}

// BenchmarkValidateCached is the cache's work for a repeated token, without
// net/http around it, serial and parallel: one allocation, the caller's
// own copy of the claims.
func BenchmarkValidateCached(b *testing.B) {
	tenant, tokens := benchSetup(b)
	a := newAuth(b, tenant)
	tok := tokens[0]
	if _, err := a.Validate(b.Context(), tok); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Validate(b.Context(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		ctx := b.Context()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := a.Validate(ctx, tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
