package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/entragate/entragate/middleware/entratest"
)

// Benchmarks of the validation paths. Compare runs with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 10 ./middleware > new.txt
//	benchstat old.txt new.txt
func BenchmarkValidate(b *testing.B) {
	tenant := entratest.NewTenant(b)
	a := newAuth(b, tenant)
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

func BenchmarkRequireAuth(b *testing.B) {
	tenant := entratest.NewTenant(b)
	a := newAuth(b, tenant)
	h := a.RequireAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	token := "Bearer " + tenant.AccessToken()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", token)
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}
