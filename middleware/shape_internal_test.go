package middleware

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entragate/entragate/claims"
)

// A fifth kind of authority is a shape and a constructor, and nothing else:
// this one, written here, reads one v2.0 document at a fixed path of its
// own, and is served through the whole pipeline (Provider, router, keys,
// Authenticator, cache) without any other file knowing of it.
type pinnedDocument struct{}

func (pinnedDocument) name() string                 { return "PinnedDocument" }
func (pinnedDocument) describe(a *Authority) string { return a.host + "/pinned/" + a.tenant }
func (pinnedDocument) check(a *Authority) error {
	if !isGUID(a.tenant) {
		return errors.New("PinnedDocument: the tenant must be a GUID")
	}
	return nil
}
func (pinnedDocument) documents(a *Authority) []sourceSpec {
	return []sourceSpec{{version: claims.Version2, routes: []string{claims.Version2}, url: a.host + "/pinned/" + a.tenant + "/metadata.json"}}
}
func (pinnedDocument) tenantOfIssuer(a *Authority, issuer string) (string, error) {
	return literalTenant(a, issuer)
}
func (pinnedDocument) pick(candidates []*source, c *claims.Claims, version string) (*source, *Error) {
	return pickByVersion(candidates, c, version)
}
func (pinnedDocument) checkTenant(_ *authority, st *sourceState, c *claims.Claims) *Error {
	return tidNamesIssuersTenant(st, c)
}
func (pinnedDocument) guestsApply() bool         { return true }
func (pinnedDocument) overlap(*Authority) string { return "" }
func (pinnedDocument) stepUp(a *Authority, _ *sourceState) (string, string, bool) {
	return a.tenantID, a.host + "/pinned/" + a.tenantID + "/authorize", true
}

func pinnedAuthority(host, tenantID string) Authority {
	return Authority{shape: pinnedDocument{}, host: host, tenant: tenantID, tenantID: tenantID}
}

func TestAFifthShapeNeedsNoOtherFile(t *testing.T) {
	key := testKey(t)
	const tid, clientID = "2f1e1c3a-4b5d-4e6f-8a7b-9c0d1e2f3a4b", "6e74172b-be56-4843-9ff4-e66a39bb12e3"
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	issuer := srv.URL + "/" + tid + "/v2.0"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pinned/"+tid+"/metadata.json", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": srv.URL + "/pinned/keys"})
	})
	mux.HandleFunc("GET /pinned/keys", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]string{
			"kty": "RSA", "use": "sig", "kid": "k1",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	srv.Config.Handler = mux

	p, err := NewProvider(t.Context(), ProviderConfig{Authorities: []Authority{pinnedAuthority(srv.URL, tid)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	a, err := p.NewAuthenticator(APIConfig{ClientID: clientID})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(edit func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"iss": issuer, "aud": clientID, "tid": tid, "azp": clientID, "scp": "Data.Read", "ver": "2.0",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "oid": tid}
		if edit != nil {
			edit(c)
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for range 2 { // first sight, then from the cache
		if _, err := a.Validate(t.Context(), mint(nil)); err != nil {
			t.Fatalf("token of the fifth shape: %v", err)
		}
	}
	if _, err := a.Validate(t.Context(), mint(func(c jwt.MapClaims) { c["tid"] = "00000000-0000-0000-0000-000000000001" })); !errors.Is(err, ErrInvalidIssuer) {
		t.Errorf("another tenant's tid under its issuer: %v, want its tenant rule to refuse it", err)
	}
	if st := p.Stats(); len(st.Sources) != 1 || !st.Sources[0].Ready || !strings.HasSuffix(st.Sources[0].MetadataURL, "/metadata.json") {
		t.Errorf("stats %+v", st.Sources)
	}
}

// testKey is the first key of the fake tenant's pool (entratest/keys.pem):
// this test cannot import entratest, which imports this package.
func testKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile("entratest/keys.pem")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatal("no PEM block in entratest/keys.pem")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}
