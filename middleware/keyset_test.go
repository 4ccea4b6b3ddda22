package middleware_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

func rsaJWK(kid string, pub *rsa.PublicKey, cert []byte) map[string]any {
	m := map[string]any{
		"kty": "RSA", "use": "sig", "kid": kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
	if cert != nil {
		sum := sha1.Sum(cert)
		m["x5t"] = base64.RawURLEncoding.EncodeToString(sum[:])
		m["x5c"] = []string{base64.StdEncoding.EncodeToString(cert)}
	}
	return m
}

// TestKeySetEntriesAreCheckedOneByOne serves a key set mixing usable and
// unusable keys, with real-cloud issuer strings, and checks which keys can
// sign an accepted token.
func TestKeySetEntriesAreCheckedOneByOne(t *testing.T) {
	keys := entratest.NewServer()
	t.Cleanup(keys.Close)
	tenant := keys.NewTenant()
	good, relabelled, mismatched, otherCert, encKey, rs512Key := keys.NewKey(), keys.NewKey(), keys.NewKey(), keys.NewKey(), keys.NewKey(), keys.NewKey()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}

	wrongThumb := rsaJWK("relabelled", relabelled.PublicKey(), relabelled.Certificate())
	wrongThumb["x5t"] = "bm90LXRoZS10aHVtYnByaW50"
	certOfAnother := rsaJWK("mismatched", mismatched.PublicKey(), otherCert.Certificate())
	delete(certOfAnother, "x5t")
	enc := rsaJWK("enc", encKey.PublicKey(), nil)
	enc["use"] = "enc"
	withAlg := rsaJWK("rs512", rs512Key.PublicKey(), nil)
	withAlg["alg"] = "RS512"
	set := map[string]any{"keys": []any{
		rsaJWK("good", good.PublicKey(), good.Certificate()),
		wrongThumb,
		certOfAnother,
		rsaJWK("small", &small.PublicKey, nil),
		enc,
		withAlg,
		map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
		map[string]any{"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
		"not an object",
	}}

	v2Issuer := "https://login.microsoftonline.com/" + tenant.ID + "/v2.0"
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/" + tenant.ID + "/v2.0/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": v2Issuer, "jwks_uri": srv.URL + "/keys"})
		case "/" + tenant.ID + "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "https://sts.windows.net/" + tenant.ID + "/", "jwks_uri": srv.URL + "/keys"})
		case "/keys":
			_ = json.NewEncoder(w).Encode(set)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	a, err := middleware.New(t.Context(), middleware.Config{ClientID: tenant.ClientID, Authorities: []middleware.Authority{middleware.EntraTenant(tenant.ID).WithHost(srv.URL)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })

	tests := []struct {
		name string
		kid  string
		key  *rsa.PrivateKey
		want error
	}{
		{"usable key", "good", good.PrivateKey(), nil},
		{"thumbprint not matching its certificate: label ignored", "relabelled", relabelled.PrivateKey(), nil},
		{"certificate of another key: skipped", "mismatched", mismatched.PrivateKey(), middleware.ErrUnknownSigningKey},
		{"1024-bit key: skipped", "small", small, middleware.ErrUnknownSigningKey},
		{"encryption key: skipped", "enc", encKey.PrivateKey(), middleware.ErrUnknownSigningKey},
		{"key for another alg: skipped", "rs512", rs512Key.PrivateKey(), middleware.ErrUnknownSigningKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := resign(t, tenant.AccessToken(entratest.Issuer(v2Issuer)), tc.kid, tc.key)
			if _, err := a.Validate(t.Context(), tok); !errors.Is(err, tc.want) {
				t.Errorf("Validate: %v, want %v", err, tc.want)
			}
		})
	}
	if ids := a.Stats().KeyIDs; len(ids) != 2 {
		t.Errorf("trusted key IDs %v, want good and relabelled", ids)
	}
}

// resign replaces the kid of a token and signs it with key.
func resign(t testing.TB, tok, kid string, key *rsa.PrivateKey) string {
	t.Helper()
	_, payload, _ := parts(tok)
	header := encJSON(t, map[string]any{"typ": "JWT", "alg": "RS256", "kid": kid})
	sig, err := jwt.SigningMethodRS256.Sign(header+"."+payload, key)
	if err != nil {
		t.Fatal(err)
	}
	return header + "." + payload + "." + base64.RawURLEncoding.EncodeToString(sig)
}
