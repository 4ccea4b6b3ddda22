package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/entragate/entragate/middleware/entratest"
)

var shared struct {
	once sync.Once
	s    *setup
	err  error
}

func sharedSetup(tb testing.TB) *setup {
	shared.once.Do(func() { shared.s, shared.err = newSetup(context.Background()) })
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.s
}

// Every middleware in the comparison really checks the token: a benchmark
// of one that accepted anything would compare nothing.
func TestEveryPeerValidates(t *testing.T) {
	s := sharedSetup(t)
	other := s.tenant.Server().NewKey()
	bad := map[string]string{
		"expired":        s.tenant.AccessToken(entratest.Expired()),
		"wrong audience": s.tenant.AccessToken(entratest.Audience(entratest.NewGUID())),
		"wrong issuer":   s.tenant.AccessToken(entratest.Issuer("https://login.microsoftonline.com/" + entratest.NewGUID() + "/v2.0")),
		"forged":         s.tenant.AccessToken(entratest.SignedWith(other), entratest.Header("kid", s.tenant.Server().SigningKey().ID)),
		"unsigned":       unsigned(s.tokens[0]),
	}
	for _, p := range s.peers {
		t.Run(p.name, func(t *testing.T) {
			call := func(tok string) int {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				p.handler.ServeHTTP(rec, req)
				return rec.Code
			}
			if code := call(s.tokens[0]); code != http.StatusOK {
				t.Fatalf("valid token: %d", code)
			}
			for name, tok := range bad {
				if code := call(tok); code == http.StatusOK || code == fail {
					t.Errorf("%s token: %d, want a refusal", name, code)
				}
			}
		})
	}
}

// unsigned turns a token into an alg "none" token with the same claims.
func unsigned(tok string) string {
	parts := strings.SplitN(tok, ".", 3)
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
}

func BenchmarkFloor(b *testing.B) { benchFloor(b, sharedSetup(b)) }

func BenchmarkPeers(b *testing.B) {
	s := sharedSetup(b)
	for _, p := range s.peers {
		b.Run(p.name+"/first_seen", func(b *testing.B) { benchPeer(b, s, p, false, false) })
		b.Run(p.name+"/repeated", func(b *testing.B) { benchPeer(b, s, p, true, false) })
	}
	b.Run("entragate/repeated_parallel", func(b *testing.B) { benchPeer(b, s, s.peers[0], true, true) })
}
