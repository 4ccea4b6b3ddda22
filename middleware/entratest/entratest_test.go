package entratest_test

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entragate/entragate/middleware/entratest"
)

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func fixture(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "entra", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func sortedKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// missingMembers lists the members of want that got lacks or types differently.
func missingMembers(want, got map[string]any) []string {
	var out []string
	for _, k := range sortedKeys(want) {
		g, ok := got[k]
		if !ok {
			out = append(out, k+" (absent)")
			continue
		}
		if w, _ := json.Marshal(want[k]); len(w) > 0 {
			if gb, _ := json.Marshal(g); len(gb) == 0 || (w[0] == '[') != (gb[0] == '[') || (w[0] == '"') != (gb[0] == '"') {
				out = append(out, k+" (type)")
			}
		}
	}
	return out
}

func TestMetadataIsShapedLikeEntras(t *testing.T) {
	tenant := entratest.NewTenant(t)
	base := tenant.Server().URL
	tests := []struct {
		name, url, fixture, issuer, jwks string
	}{
		{"v2 tenant", base + "/" + tenant.ID + "/v2.0/.well-known/openid-configuration", "openid-configuration-v2.json",
			tenant.IssuerV2(), base + "/" + tenant.ID + "/discovery/v2.0/keys"},
		{"v1 tenant", base + "/" + tenant.ID + "/.well-known/openid-configuration", "openid-configuration-v1.json",
			"https://sts.windows.net/" + tenant.ID + "/", base + "/common/discovery/keys"},
		{"v2 common", base + "/common/v2.0/.well-known/openid-configuration", "openid-configuration-v2.json",
			base + "/{tenantid}/v2.0", base + "/common/discovery/v2.0/keys"},
		{"v2 organizations", base + "/organizations/v2.0/.well-known/openid-configuration", "openid-configuration-v2.json",
			base + "/{tenantid}/v2.0", base + "/organizations/discovery/v2.0/keys"},
		{"v1 common", base + "/common/.well-known/openid-configuration", "openid-configuration-v1.json",
			"https://sts.windows.net/{tenantid}/", base + "/common/discovery/keys"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, doc := getJSON(t, tc.url)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			if miss := missingMembers(fixture(t, tc.fixture), doc); len(miss) > 0 {
				t.Errorf("members unlike Entra's: %v", miss)
			}
			if doc["issuer"] != tc.issuer || doc["jwks_uri"] != tc.jwks {
				t.Errorf("issuer %v jwks_uri %v, want %s %s", doc["issuer"], doc["jwks_uri"], tc.issuer, tc.jwks)
			}
			for k, v := range doc {
				if s, ok := v.(string); ok && strings.HasPrefix(s, "http") && strings.Contains(k, "endpoint") && !strings.HasPrefix(s, base) {
					t.Errorf("%s = %s points beyond loopback", k, s)
				}
			}
		})
	}
	if status, doc := getJSON(t, base+"/"+entratest.NewGUID()+"/v2.0/.well-known/openid-configuration"); status != 400 || doc["error"] != "invalid_tenant" {
		t.Errorf("unknown tenant: %d %v, want 400 invalid_tenant", status, doc)
	}
}

func TestKeySetIsShapedLikeEntras(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	want := fixture(t, "keys-v2-entry.json")
	for _, tc := range []struct {
		name, url, issuer string
	}{
		{"v2 tenant keys", s.URL + "/" + tenant.ID + "/discovery/v2.0/keys", tenant.IssuerV2()},
		{"v2 common keys", s.URL + "/common/discovery/v2.0/keys", s.URL + "/{tenantid}/v2.0"},
		{"v1 keys", s.URL + "/common/discovery/keys", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, doc := getJSON(t, tc.url)
			keys, _ := doc["keys"].([]any)
			if len(keys) != 1 {
				t.Fatalf("%d keys, want the one signing key", len(keys))
			}
			k := keys[0].(map[string]any)
			if _, hasAlg := k["alg"]; hasAlg {
				t.Error("Entra's keys carry no alg")
			}
			if k["issuer"] != nilIfEmpty(tc.issuer) {
				t.Errorf("issuer %v, want %q", k["issuer"], tc.issuer)
			}
			if tc.issuer != "" {
				if miss := missingMembers(want, k); len(miss) > 0 {
					t.Errorf("members unlike Entra's: %v", miss)
				}
			}
			// The certificate is real, self-signed, holds the key, and kid and
			// x5t are its SHA-1 thumbprint.
			der, err := base64.StdEncoding.DecodeString(k["x5c"].([]any)[0].(string))
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil || cert.Subject.String() != cert.Issuer.String() {
				t.Errorf("certificate is not self-signed: %v", err)
			}
			sum := sha1.Sum(der)
			if thumb := base64.RawURLEncoding.EncodeToString(sum[:]); k["kid"] != thumb || k["x5t"] != thumb {
				t.Errorf("kid %v x5t %v, want thumbprint %s", k["kid"], k["x5t"], thumb)
			}
			n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
			if !cert.PublicKey.(*rsa.PublicKey).Equal(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}) || k["e"] != "AQAB" {
				t.Error("n/e do not match the certificate's key")
			}
		})
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// claimsOf verifies a minted token with the server's key, independently of
// entragate's middleware, and returns its header and claims.
func claimsOf(t *testing.T, tenant *entratest.Tenant, tok string) (map[string]any, jwt.MapClaims) {
	t.Helper()
	parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithJSONNumber(), jwt.WithoutClaimsValidation()).Parse(tok, func(*jwt.Token) (any, error) {
		return tenant.Server().SigningKey().PublicKey(), nil
	})
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	return parsed.Header, parsed.Claims.(jwt.MapClaims)
}

func TestMintedTokensCarryEntrasClaims(t *testing.T) {
	tenant := entratest.NewTenant(t)
	tests := []struct {
		name       string
		token      string
		header     []string
		claims     []string
		absent     []string
		ver, audOf string
	}{
		{"v2 delegated", tenant.AccessToken(), []string{"typ", "alg", "kid"},
			[]string{"aud", "iss", "iat", "nbf", "exp", "aio", "azp", "azpacr", "name", "oid", "preferred_username", "rh", "scp", "sub", "tid", "uti", "ver"},
			[]string{"appid", "upn", "roles", "idtyp"}, "2.0", "client"},
		{"v1 delegated", tenant.AccessToken(entratest.V1()), []string{"typ", "alg", "kid", "x5t"},
			[]string{"aud", "iss", "iat", "nbf", "exp", "acr", "aio", "amr", "appid", "appidacr", "ipaddr", "name", "oid", "rh", "scp", "sub", "tid", "unique_name", "upn", "uti", "ver"},
			[]string{"azp", "preferred_username"}, "1.0", "uri"},
		{"v2 app-only", tenant.AppToken(entratest.Roles("Data.Read.All")), []string{"typ", "alg", "kid"},
			[]string{"aud", "iss", "iat", "nbf", "exp", "aio", "azp", "azpacr", "idtyp", "oid", "rh", "roles", "sub", "tid", "uti", "ver"},
			[]string{"scp", "name", "preferred_username"}, "2.0", "client"},
		{"v1 app-only", tenant.AppToken(entratest.V1(), entratest.Roles("Data.Read.All")), []string{"typ", "alg", "kid", "x5t"},
			[]string{"aud", "iss", "appid", "appidacr", "idp", "idtyp", "oid", "roles", "sub", "tid", "ver"},
			[]string{"scp", "azp"}, "1.0", "uri"},
		{"ID token", tenant.IDToken(), []string{"typ", "alg", "kid"},
			[]string{"aud", "iss", "iat", "nbf", "exp", "aio", "name", "nonce", "oid", "preferred_username", "rh", "sub", "tid", "uti", "ver"},
			[]string{"scp", "roles"}, "2.0", "client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, c := claimsOf(t, tenant, tc.token)
			for _, k := range tc.header {
				if _, ok := h[k]; !ok {
					t.Errorf("header lacks %s", k)
				}
			}
			for _, k := range tc.claims {
				if _, ok := c[k]; !ok {
					t.Errorf("claims lack %s", k)
				}
			}
			for _, k := range tc.absent {
				if _, ok := c[k]; ok {
					t.Errorf("claims carry %s, which Entra does not put in this kind", k)
				}
			}
			if c["ver"] != tc.ver || c["tid"] != tenant.ID {
				t.Errorf("ver %v tid %v", c["ver"], c["tid"])
			}
			wantAud := tenant.ClientID
			if tc.audOf == "uri" {
				wantAud = "api://" + tenant.ClientID
			}
			if c["aud"] != wantAud {
				t.Errorf("aud %v, want %s", c["aud"], wantAud)
			}
			for _, k := range []string{"iat", "nbf", "exp"} {
				if n, ok := c[k].(json.Number); !ok || strings.ContainsAny(string(n), ".eE") {
					t.Errorf("%s = %v, want a JSON integer", k, c[k])
				}
			}
			if s, ok := c["scp"]; ok {
				if _, isString := s.(string); !isString {
					t.Errorf("scp is %T, want a space-separated string", s)
				}
			}
			if r, ok := c["roles"]; ok {
				if _, isArray := r.([]any); !isArray {
					t.Errorf("roles is %T, want an array", r)
				}
			}
			if h["kid"] != tenant.Server().SigningKey().ID {
				t.Errorf("kid %v is not the signing key's", h["kid"])
			}
		})
	}
}

func TestTokenOptions(t *testing.T) {
	tenant := entratest.NewTenant(t)
	issued := time.Date(2030, 5, 1, 8, 0, 0, 0, time.UTC)
	_, c := claimsOf(t, tenant, tenant.AccessToken(
		entratest.Scopes("A", "B"), entratest.IssuedAt(issued), entratest.Lifetime(10*time.Minute),
		entratest.Claim("xms_cc", []string{"cp1"}), entratest.WithoutClaim("aio"),
		entratest.ClientApp("app-1"), entratest.ForUser(entratest.User{ObjectID: "u-1", Name: "Grace Hopper", Username: "grace@x"}),
	))
	checks := map[string]any{
		"scp": "A B", "iat": json.Number("1903852800"), "exp": json.Number("1903853400"),
		"azp": "app-1", "oid": "u-1", "name": "Grace Hopper", "preferred_username": "grace@x",
	}
	for k, want := range checks {
		if c[k] != want {
			t.Errorf("%s = %v, want %v", k, c[k], want)
		}
	}
	if _, ok := c["aio"]; ok {
		t.Error("WithoutClaim left aio")
	}
	h, _, _ := jwt.NewParser().ParseUnverified(tenant.AccessToken(entratest.WithoutHeader("kid"), entratest.Header("x-test", 1)), jwt.MapClaims{})
	if _, ok := h.Header["kid"]; ok || h.Header["x-test"] == nil {
		t.Errorf("header edits not applied: %v", h.Header)
	}
	_, exp := claimsOf(t, tenant, tenant.AccessToken(entratest.Expired()))
	if n, _ := exp["exp"].(json.Number).Int64(); time.Unix(n, 0).After(time.Now().Add(-30 * time.Minute)) {
		t.Errorf("Expired token expires at %v", time.Unix(n, 0))
	}
}

func TestRotationIsVisibleInTheKeySet(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	kids := func() []string {
		_, doc := getJSON(t, s.URL+"/"+tenant.ID+"/discovery/v2.0/keys")
		var out []string
		for _, k := range doc["keys"].([]any) {
			out = append(out, k.(map[string]any)["kid"].(string))
		}
		return out
	}
	first := s.SigningKey()
	unpublished := s.NewKey()
	if slices.Contains(kids(), unpublished.ID) || unpublished.ID == first.ID {
		t.Fatal("NewKey must return an unpublished, distinct key")
	}
	next := s.RotateKey()
	if got := kids(); !slices.Equal(got, []string{first.ID, next.ID}) || s.SigningKey() != next {
		t.Errorf("after RotateKey: kids %v, signing %s", got, s.SigningKey().ID)
	}
	s.RetireKey(first)
	if got := kids(); !slices.Equal(got, []string{next.ID}) {
		t.Errorf("after RetireKey: kids %v", got)
	}
	s.PublishKey(unpublished)
	if got := kids(); !slices.Contains(got, unpublished.ID) {
		t.Errorf("after PublishKey: kids %v", got)
	}
}

func TestFaultsAndCounts(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	keysURL := s.URL + "/" + tenant.ID + "/discovery/v2.0/keys"
	metaURL := tenant.MetadataURL()
	client := &http.Client{Timeout: 300 * time.Millisecond}
	fetch := func(url string) (int, []byte, error) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var b []byte
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b, nil
	}
	tests := []struct {
		fault entratest.Fault
		check func(status int, body []byte, err error) bool
	}{
		{entratest.Unavailable, func(st int, _ []byte, err error) bool { return err == nil && st == 503 }},
		{entratest.ServerError, func(st int, _ []byte, err error) bool { return err == nil && st == 500 }},
		{entratest.Hang, func(_ int, _ []byte, err error) bool { return err != nil }},
		{entratest.Garbage, func(st int, b []byte, err error) bool { return err == nil && st == 200 && !json.Valid(b) }},
		{entratest.Huge, func(st int, b []byte, err error) bool { return st == 200 && len(b) > 1<<20 }},
		{entratest.EmptyKeySet, func(st int, b []byte, err error) bool {
			return err == nil && st == 200 && strings.Contains(string(b), `"keys":[]`)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			s.ResetCounts()
			s.SetFault(entratest.Keys, tc.fault)
			defer s.SetFault(entratest.All, entratest.NoFault)
			if tc.fault == entratest.Huge {
				client.Timeout = 5 * time.Second
				defer func() { client.Timeout = 300 * time.Millisecond }()
			}
			st, b, err := fetch(keysURL)
			if !tc.check(st, b, err) {
				t.Errorf("keys: status %d, %d bytes, err %v", st, len(b), err)
			}
			if st, _, err := fetch(metaURL); err != nil || st != 200 {
				t.Errorf("metadata affected by a keys fault: %d %v", st, err)
			}
			if s.Requests(entratest.KeysV2) != 1 || s.Requests(entratest.MetadataV2) != 1 || s.Requests(entratest.All) != 2 {
				t.Errorf("counts: keys %d metadata %d all %d, want 1 1 2",
					s.Requests(entratest.KeysV2), s.Requests(entratest.MetadataV2), s.Requests(entratest.All))
			}
		})
	}
	s.SetDelay(entratest.Metadata, 200*time.Millisecond)
	start := time.Now()
	if st, _, err := fetch(metaURL); err != nil || st != 200 || time.Since(start) < 200*time.Millisecond {
		t.Errorf("delay: %d %v after %v", st, err, time.Since(start))
	}
}

func TestSeveralTenantsOnOneServer(t *testing.T) {
	s := entratest.NewServer()
	t.Cleanup(s.Close)
	a, b := s.NewTenant(), s.NewTenant()
	if a.ID == b.ID || a.IssuerV2() == b.IssuerV2() || s.Tenant(a.ID) != a || s.Tenant(b.ID) != b {
		t.Fatal("tenants are not distinct")
	}
	for _, tenant := range []*entratest.Tenant{a, b} {
		if st, doc := getJSON(t, tenant.MetadataURL()); st != 200 || doc["issuer"] != tenant.IssuerV2() {
			t.Errorf("tenant %s metadata: %d %v", tenant.ID, st, doc["issuer"])
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("adding a tenant twice must panic")
		}
	}()
	s.NewTenant(entratest.WithTenantID(a.ID))
}

func TestStartRefusesNonLoopbackAddresses(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if s, err := entratest.Start(addr); err == nil {
			s.Close()
			t.Errorf("Start(%q) listened beyond loopback", addr)
		}
	}
}

func TestManyServersShareThePreGeneratedKeys(t *testing.T) {
	// Servers take keys from a pre-generated pool instead of generating RSA
	// keys: every new server starts with the pool's first key.
	first := entratest.NewTenant(t).Server().SigningKey().ID
	for range 50 {
		tenant := entratest.NewTenant(t)
		if id := tenant.Server().SigningKey().ID; id != first {
			t.Fatalf("server signing key %s, want the pool's first key %s", id, first)
		}
	}
}

func TestExtraRoutesDoNotShadowEntraPaths(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	s.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if st, doc := getJSON(t, tenant.MetadataURL()); st != 200 || doc["issuer"] != tenant.IssuerV2() {
		t.Errorf("metadata behind a catch-all extra route: %d %v", st, doc)
	}
	resp, err := http.Get(s.URL + "/dev/anything")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Errorf("extra route: %d, want 418", resp.StatusCode)
	}
	resp, err = http.Post(tenant.MetadataURL(), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST to metadata: %d, want 405", resp.StatusCode)
	}
}
