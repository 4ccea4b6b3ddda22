package middleware_test

import (
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

var b64 = base64.RawURLEncoding

// parts splits a compact JWS.
func parts(tok string) (header, payload, sig string) {
	p := strings.SplitN(tok, ".", 3)
	return p[0], p[1], p[2]
}

// rs256 signs header.payload with key, the way Entra would.
func rs256(t testing.TB, key *rsa.PrivateKey, header, payload string) string {
	t.Helper()
	sig, err := jwt.SigningMethodRS256.Sign(header+"."+payload, key)
	if err != nil {
		t.Fatal(err)
	}
	return header + "." + payload + "." + b64.EncodeToString(sig)
}

// hs256 signs with an HMAC secret: the alg-confusion attack.
func hs256(header, payload string, secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(header + "." + payload))
	return header + "." + payload + "." + b64.EncodeToString(mac.Sum(nil))
}

func encJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// payloadWith decodes a token's payload, applies edit and re-encodes it.
func payloadWith(t testing.TB, tok string, edit func(map[string]any)) string {
	t.Helper()
	_, p, _ := parts(tok)
	raw, _ := b64.DecodeString(p)
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	return encJSON(t, m)
}

// padded encodes a JSON object as base64url with "=" padding, adding
// insignificant spaces until the encoding needs padding.
func padded(obj string) string {
	for {
		if enc := base64.URLEncoding.EncodeToString([]byte(obj)); strings.HasSuffix(enc, "=") {
			return enc
		}
		obj += " "
	}
}

// TestHostileTokens throws hand-made attacks at RequireAuth. Every one must
// get a 4xx with the right RFC 6750 error, quickly, and no URL named in a
// header may ever be fetched.
func TestHostileTokens(t *testing.T) {
	tenant := entratest.NewTenant(t)
	// The reason of each refusal, in a header of the answer.
	srv := protectedServer(t, newAuth(t, tenant, func(c *middleware.Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, e *middleware.Error) {
			w.Header().Set("X-Reason", middleware.ReasonName(e))
			middleware.WriteError(w, r, e)
		}
	}))
	signer := tenant.Server().SigningKey()
	priv := signer.PrivateKey()
	kid := signer.ID
	attacker := tenant.Server().NewKey()

	// A server that must never be contacted: headers point key lookups at it.
	var lured atomic.Int64
	lure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lured.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{}})
	}))
	t.Cleanup(lure.Close)

	valid := tenant.AccessToken()
	vh, vp, vs := parts(valid)
	header := func(h map[string]any) string { return encJSON(t, h) }
	std := map[string]any{"typ": "JWT", "alg": "RS256", "kid": kid}
	with := func(extra map[string]any) map[string]any {
		h := map[string]any{}
		for k, v := range std {
			h[k] = v
		}
		for k, v := range extra {
			if v == nil {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}

	pubPKIX, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPKCS1 := x509.MarshalPKCS1PublicKey(&priv.PublicKey)
	pemPKIX := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubPKIX})
	pemPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pubPKCS1})
	jwkJSON, _ := json.Marshal(map[string]string{"kty": "RSA", "n": b64.EncodeToString(priv.N.Bytes()), "e": "AQAB"})
	attackerJWK := map[string]any{"kty": "RSA", "kid": kid, "n": b64.EncodeToString(attacker.PublicKey().N.Bytes()), "e": "AQAB"}
	hsHeader := header(with(map[string]any{"alg": "HS256"}))

	flip := func(s string) string {
		b, _ := b64.DecodeString(s)
		b[len(b)/2] ^= 0x01
		return b64.EncodeToString(b)
	}
	stdHeader := header(std)
	type tc struct {
		name   string
		token  string
		code   string // WWW-Authenticate error: invalid_token unless stated
		reason error
	}
	cases := []tc{
		// alg none, every spelling, with and without a signature.
		{"alg none without signature", header(with(map[string]any{"alg": "none"})) + "." + vp + ".", "", middleware.ErrUnsupportedAlgorithm},
		{"alg None without signature", header(with(map[string]any{"alg": "None"})) + "." + vp + ".", "", middleware.ErrUnsupportedAlgorithm},
		{"alg NONE without signature", header(with(map[string]any{"alg": "NONE"})) + "." + vp + ".", "", middleware.ErrUnsupportedAlgorithm},
		{"alg nOnE without signature", header(with(map[string]any{"alg": "nOnE"})) + "." + vp + ".", "", middleware.ErrUnsupportedAlgorithm},
		{"alg none with the real signature", header(with(map[string]any{"alg": "none"})) + "." + vp + "." + vs, "", middleware.ErrUnsupportedAlgorithm},
		{"alg empty", header(with(map[string]any{"alg": ""})) + "." + vp + "." + vs, "", middleware.ErrUnsupportedAlgorithm},
		{"alg missing", header(with(map[string]any{"alg": nil})) + "." + vp + "." + vs, "", middleware.ErrUnsupportedAlgorithm},
		{"alg not a string", header(with(map[string]any{"alg": 256})) + "." + vp + "." + vs, "", middleware.ErrMalformedToken},
		// HS256 keyed with the public key, in the encodings a verifier might use.
		{"HS256 with PEM PKIX public key", hs256(hsHeader, vp, pemPKIX), "", middleware.ErrUnsupportedAlgorithm},
		{"HS256 with PEM PKCS1 public key", hs256(hsHeader, vp, pemPKCS1), "", middleware.ErrUnsupportedAlgorithm},
		{"HS256 with DER public key", hs256(hsHeader, vp, pubPKIX), "", middleware.ErrUnsupportedAlgorithm},
		{"HS256 with the JWK JSON", hs256(hsHeader, vp, jwkJSON), "", middleware.ErrUnsupportedAlgorithm},
		{"HS256 with the modulus bytes", hs256(hsHeader, vp, priv.N.Bytes()), "", middleware.ErrUnsupportedAlgorithm},
		{"HS256 with the kid", hs256(hsHeader, vp, []byte(kid)), "", middleware.ErrUnsupportedAlgorithm},
		// alg header mismatch with how it was signed.
		{"header says RS512, signed RS256", rs256(t, priv, header(with(map[string]any{"alg": "RS512"})), vp), "", middleware.ErrUnsupportedAlgorithm},
		{"header says PS256, signed RS256", rs256(t, priv, header(with(map[string]any{"alg": "PS256"})), vp), "", middleware.ErrUnsupportedAlgorithm},
		{"header says ES256", rs256(t, priv, header(with(map[string]any{"alg": "ES256"})), vp), "", middleware.ErrUnsupportedAlgorithm},
		// Signature damage.
		{"signature flipped", vh + "." + vp + "." + flip(vs), "", middleware.ErrInvalidSignature},
		{"signature stripped", vh + "." + vp + ".", "", middleware.ErrInvalidSignature},
		{"signature truncated to half its bytes", vh + "." + vp + "." + vs[:172], "", middleware.ErrInvalidSignature},
		{"signature of another token", vh + "." + vp + "." + func() string { _, _, s := parts(tenant.AccessToken()); return s }(), "", middleware.ErrInvalidSignature},
		{"payload tampered: scope added", vh + "." + payloadWith(t, valid, func(m map[string]any) { m["scp"] = "SecureData.Read Admin" }) + "." + vs, "", middleware.ErrInvalidSignature},
		{"payload tampered: roles added", vh + "." + payloadWith(t, valid, func(m map[string]any) { m["roles"] = []string{"Admin"} }) + "." + vs, "", middleware.ErrInvalidSignature},
		{"payload tampered: exp extended", vh + "." + payloadWith(t, valid, func(m map[string]any) { m["exp"] = time.Now().Add(24 * time.Hour).Unix() }) + "." + vs, "", middleware.ErrInvalidSignature},
		// Foreign keys.
		{"foreign key, unknown kid", tenant.AccessToken(entratest.SignedWith(attacker)), "", middleware.ErrUnknownSigningKey},
		{"foreign key, known kid", tenant.AccessToken(entratest.SignedWith(attacker), entratest.Header("kid", kid)), "", middleware.ErrInvalidSignature},
		// Key-locating headers: never used, never fetched.
		{"jwk header with the attacker's key and known kid", rs256(t, attacker.PrivateKey(), header(with(map[string]any{"jwk": attackerJWK})), vp), "", middleware.ErrInvalidSignature},
		{"jwk header with the attacker's key, no kid", rs256(t, attacker.PrivateKey(), header(with(map[string]any{"jwk": attackerJWK, "kid": nil})), vp), "", middleware.ErrMissingKeyID},
		{"jku header pointing elsewhere", rs256(t, attacker.PrivateKey(), header(with(map[string]any{"jku": lure.URL + "/jwks"})), vp), "", middleware.ErrInvalidSignature},
		{"jku header with unknown kid", rs256(t, attacker.PrivateKey(), header(with(map[string]any{"jku": lure.URL + "/jwks", "kid": "lure"})), vp), "", middleware.ErrUnknownSigningKey},
		{"x5u header pointing elsewhere", rs256(t, attacker.PrivateKey(), header(with(map[string]any{"x5u": lure.URL + "/cert.pem", "kid": "lure2"})), vp), "", middleware.ErrUnknownSigningKey},
		{"x5c header with the attacker's certificate", rs256(t, attacker.PrivateKey(), header(with(map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(attacker.Certificate())}})), vp), "", middleware.ErrInvalidSignature},
		// kid games.
		{"kid path traversal", rs256(t, attacker.PrivateKey(), header(with(map[string]any{"kid": "../../../../dev/null"})), vp), "", middleware.ErrUnknownSigningKey},
		{"kid SQL injection", rs256(t, attacker.PrivateKey(), header(with(map[string]any{"kid": "x' OR '1'='1"})), vp), "", middleware.ErrUnknownSigningKey},
		{"kid with NUL and newline", rs256(t, attacker.PrivateKey(), header(with(map[string]any{"kid": "a\x00b\nc"})), vp), "", middleware.ErrUnknownSigningKey},
		{"kid 10 KiB long", rs256(t, attacker.PrivateKey(), header(with(map[string]any{"kid": strings.Repeat("k", 10<<10)})), vp), "", middleware.ErrMalformedToken},
		{"kid a number", rs256(t, priv, header(with(map[string]any{"kid": 1})), vp), "", middleware.ErrMalformedToken},
		{"kid an object", rs256(t, priv, header(with(map[string]any{"kid": map[string]any{"a": kid}})), vp), "", middleware.ErrMalformedToken},
		{"kid empty", rs256(t, priv, header(with(map[string]any{"kid": ""})), vp), "", middleware.ErrMissingKeyID},
		// crit, even correctly signed.
		{"crit header", rs256(t, priv, header(with(map[string]any{"crit": []string{"b64"}, "b64": false})), vp), "", middleware.ErrCriticalHeader},
		{"duplicate alg in the header, correctly signed", rs256(t, priv, b64.EncodeToString([]byte(`{"alg":"none","alg":"RS256","kid":"`+kid+`"}`)), vp), "", middleware.ErrMalformedToken},
		{"duplicate kid in the header, correctly signed", rs256(t, priv, b64.EncodeToString([]byte(`{"alg":"RS256","kid":"x","kid":"`+kid+`"}`)), vp), "", middleware.ErrMalformedToken},
		{"kid and KID in the header, correctly signed", rs256(t, priv, b64.EncodeToString([]byte(`{"alg":"RS256","KID":"x","kid":"`+kid+`"}`)), vp), "", middleware.ErrMalformedToken},
		{"alg and ALG in the header, correctly signed", rs256(t, priv, b64.EncodeToString([]byte(`{"ALG":"none","alg":"RS256","kid":"`+kid+`"}`)), vp), "", middleware.ErrMalformedToken},
		// Structure.
		{"one segment", vh, "", middleware.ErrMalformedToken},
		{"two segments", vh + "." + vp, "", middleware.ErrMalformedToken},
		{"four segments", valid + ".x", "", middleware.ErrMalformedToken},
		{"five segments (JWE shape)", vh + "." + vp + "." + vs + ".a.b", "", middleware.ErrMalformedToken},
		{"empty segments", "..", "", middleware.ErrMalformedToken},
		{"bad base64 in header", "!!!." + vp + "." + vs, "", middleware.ErrMalformedToken},
		{"bad base64 in payload", vh + ".!!!." + vs, "", middleware.ErrMalformedToken},
		{"bad base64 in signature", vh + "." + vp + ".!!!", "", middleware.ErrMalformedToken},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(valid), "", middleware.ErrMalformedToken},
		{"padded base64 header", padded(`{"alg":"RS256","kid":"`+kid+`","typ":"JWT"}`) + "." + vp + "." + vs, "", middleware.ErrMalformedToken},
		{"header not JSON", rs256(t, priv, b64.EncodeToString([]byte("alg=RS256")), vp), "", middleware.ErrMalformedToken},
		{"header a JSON array", rs256(t, priv, b64.EncodeToString([]byte(`["RS256"]`)), vp), "", middleware.ErrMalformedToken},
		{"header with trailing data", rs256(t, priv, b64.EncodeToString([]byte(`{"alg":"RS256","kid":"`+kid+`"}{}`)), vp), "", middleware.ErrMalformedToken},
		{"payload not JSON", rs256(t, priv, stdHeader, b64.EncodeToString([]byte("hello"))), "", middleware.ErrMalformedToken},
		{"payload a JSON array", rs256(t, priv, stdHeader, b64.EncodeToString([]byte(`[1,2]`))), "", middleware.ErrMalformedToken},
		{"payload a number", rs256(t, priv, stdHeader, b64.EncodeToString([]byte(`12`))), "", middleware.ErrMalformedToken},
		{"payload null", rs256(t, priv, stdHeader, b64.EncodeToString([]byte(`null`))), "", middleware.ErrMalformedToken},
		{"payload empty object", rs256(t, priv, stdHeader, b64.EncodeToString([]byte(`{}`))), "", middleware.ErrMalformedToken},
		// NumericDate and aud shapes, correctly signed.
		{"exp as a string", tenant.AccessToken(entratest.Claim("exp", "4102444800")), "", middleware.ErrMalformedToken},
		{"exp as a float", tenant.AccessToken(entratest.Claim("exp", float64(time.Now().Add(time.Hour).Unix())+0.5)), "", middleware.ErrMalformedToken},
		{"exp huge", tenant.AccessToken(entratest.Claim("exp", json.Number("1"+strings.Repeat("0", 30)))), "", middleware.ErrMalformedToken},
		{"exp in exponent form", tenant.AccessToken(entratest.Claim("exp", json.Number("4.1e9"))), "", middleware.ErrMalformedToken},
		{"exp negative", tenant.AccessToken(entratest.Claim("exp", -1)), "", middleware.ErrMalformedToken},
		{"exp null", tenant.AccessToken(entratest.Claim("exp", nil)), "", middleware.ErrMalformedToken},
		{"nbf as a string", tenant.AccessToken(entratest.Claim("nbf", "0")), "", middleware.ErrMalformedToken},
		{"iat as a string", tenant.AccessToken(entratest.Claim("iat", "0")), "", middleware.ErrMalformedToken},
		{"aud empty array", tenant.AccessToken(entratest.Audience([]string{})), "", middleware.ErrInvalidAudience},
		{"aud array without the API", tenant.AccessToken(entratest.Audience([]string{"a", "b"})), "", middleware.ErrInvalidAudience},
		{"aud as a number", tenant.AccessToken(entratest.Audience(42)), "", middleware.ErrMalformedToken},
		{"aud as an object", tenant.AccessToken(entratest.Audience(map[string]string{"aud": tenant.ClientID})), "", middleware.ErrMalformedToken},
		{"aud with different case", tenant.AccessToken(entratest.Audience(strings.ToUpper(tenant.ClientID))), "", middleware.ErrInvalidAudience},
		{"scp as an array", tenant.AccessToken(entratest.Claim("scp", []string{"SecureData.Read"})), "", middleware.ErrMalformedToken},
		{"roles as a string", tenant.AppToken(entratest.Claim("roles", "Admin")), "", middleware.ErrMalformedToken},
		{"aud of another API, AUD of this one", rs256(t, priv, stdHeader, payloadWith(t, valid, func(m map[string]any) { m["aud"] = "other"; m["AUD"] = tenant.ClientID })), "", middleware.ErrMalformedToken},
		{"scp missing, SCP present", rs256(t, priv, stdHeader, payloadWith(t, valid, func(m map[string]any) { delete(m, "scp"); m["SCP"] = "SecureData.Read" })), "", middleware.ErrNotAccessToken},
		{"tid of another tenant", tenant.AccessToken(entratest.Claim("tid", entratest.NewGUID())), "", middleware.ErrInvalidIssuer},
		{"tid and TID, correctly signed", tenant.AccessToken(entratest.Claim("TID", entratest.NewGUID())), "", middleware.ErrMalformedToken},
		{"roles and Roles, correctly signed", tenant.AppToken(entratest.Roles("R"), entratest.Claim("Roles", []string{"Admin"})), "", middleware.ErrMalformedToken},
		// Size.
		{"huge token", rs256(t, priv, stdHeader, payloadWith(t, valid, func(m map[string]any) { m["pad"] = strings.Repeat("A", 64<<10) })), "", middleware.ErrTokenTooLarge},
		{"ID token", tenant.IDToken(), "", middleware.ErrIDToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code := c.code
			if code == "" {
				code = "invalid_token"
			}
			start := time.Now()
			r := get(t, srv.URL, "Bearer "+c.token)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("answered in %v", d)
			}
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401 (body %v)", r.status, r.body)
			}
			if p := challengeParams(t, r.challenge); p["error"] != code {
				t.Errorf("challenge %q, want error %q", r.challenge, code)
			}
			if got, want := r.header.Get("X-Reason"), middleware.ReasonName(c.reason); got != want || c.reason == nil {
				t.Errorf("refused for %s, want %s", got, want)
			}
		})
	}
	t.Cleanup(func() {
		if n := lured.Load(); n != 0 {
			t.Errorf("a URL from a token header was fetched %d times", n)
		}
	})
}

func TestHostileRequests(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	srv := httptest.NewUnstartedServer(a.RequireAuth(echoClaims))
	srv.Config.MaxHeaderBytes = 64 << 10
	srv.Start()
	t.Cleanup(srv.Close)
	valid := tenant.AccessToken()

	send := func(edit func(*http.Request)) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		edit(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name   string
		edit   func(*http.Request)
		status int
	}{
		{"header flood beside a valid token", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+valid)
			for i := range 500 {
				r.Header.Add("X-Flood", strings.Repeat("x", 50)+string(rune('a'+i%26)))
			}
		}, http.StatusOK},
		{"Authorization header beyond the server's limit", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+strings.Repeat("a", 80<<10))
		}, http.StatusRequestHeaderFieldsTooLarge},
		{"four Authorization headers", func(r *http.Request) {
			for range 4 {
				r.Header.Add("Authorization", "Bearer "+valid)
			}
		}, http.StatusBadRequest},
		{"Bearer token and Basic credentials", func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+valid)
			r.Header.Add("Authorization", "Basic dXNlcjpwYXNz")
		}, http.StatusBadRequest},
		{"token with a comma", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+valid+",x") }, http.StatusBadRequest},
		{"token in a cookie only", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "access_token", Value: valid}) }, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := send(tc.edit); got != tc.status {
				t.Errorf("status %d, want %d", got, tc.status)
			}
		})
	}
}
