package forwardauth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/entragate/entragate/middleware/entratest"
	"github.com/entragate/entragate/middleware/forwardauth"
)

// BenchmarkCheck is one gateway check with a token seen before (the
// verified-token cache answers): the handler alone, and over loopback
// HTTP with keep-alive, as nginx calls it.
func BenchmarkCheck(b *testing.B) {
	tenant := entratest.NewTenant(b)
	auth, err := newAuthenticator(b, tenant.Config())
	if err != nil {
		b.Fatal(err)
	}
	h, err := forwardauth.New(forwardauth.Config{Authenticator: auth, Gateway: forwardauth.Nginx, TrustedNetworks: loopback, Routes: routes})
	if err != nil {
		b.Fatal(err)
	}
	token := "Bearer " + tenant.AccessToken(entratest.Scopes("Orders.Read"))
	newReq := func(url string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("X-Original-URI", "/api/orders/42")
		req.Header.Set("Authorization", token)
		return req
	}
	b.Run("handler", func(b *testing.B) {
		req := newReq("http://auth/")
		req.RemoteAddr = "127.0.0.1:40000"
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatal(rec.Code)
			}
		}
	})
	b.Run("loopback_http", func(b *testing.B) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := srv.Client()
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.Do(newReq(srv.URL))
			if err != nil || resp.StatusCode != 200 {
				b.Fatal(err, resp)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
