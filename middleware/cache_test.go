package middleware_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// clock is a settable Config.Now.
type clock struct{ nanos atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.nanos.Store(time.Now().UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.nanos.Load()) }
func (c *clock) advance(d time.Duration) { c.nanos.Add(int64(d)) }

func TestCacheAnswersRepeatedTokens(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	tok := tenant.AccessToken()
	for range 5 {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if st := a.Stats().Cache; st.Hits != 4 || st.Misses != 1 || st.Entries != 1 || st.Bytes == 0 {
		t.Errorf("cache stats %+v, want 4 hits, 1 miss, 1 entry", st)
	}
	// Refused tokens never enter the cache.
	bad := tenant.AccessToken(entratest.Audience("someone-else"))
	for range 3 {
		if _, err := a.Validate(t.Context(), bad); err == nil {
			t.Fatal("refused token accepted")
		}
	}
	if st := a.Stats().Cache; st.Entries != 1 || st.Hits != 4 {
		t.Errorf("after refused tokens: %+v, want the one good entry and no new hits", st)
	}
}

// Authorization runs on every request, from the cached claims.
func TestCachedTokensAreAuthorizedEveryTime(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant, func(c *middleware.Config) { c.Scopes = []string{"Files.Read"} })
	h := a.RequireAuth(middleware.RequireAnyScope("Files.Write")(echoClaims))
	reader, writer := tenant.AccessToken(entratest.Scopes("Files.Read")), tenant.AccessToken(entratest.Scopes("Files.Read", "Files.Write"))
	other := tenant.AccessToken(entratest.Scopes("Other"))
	for i := range 3 {
		if rec := serve(h, reader); rec.Code != http.StatusForbidden {
			t.Errorf("round %d: reader on a write route: %d, want 403", i, rec.Code)
		}
		if rec := serve(h, writer); rec.Code != http.StatusOK {
			t.Errorf("round %d: writer: %d, want 200", i, rec.Code)
		}
		if _, err := a.Validate(t.Context(), other); !errors.Is(err, middleware.ErrInsufficientScope) {
			t.Errorf("round %d: token without Config.Scopes: %v, want ErrInsufficientScope", i, err)
		}
	}
	if st := a.Stats().Cache; st.Hits < 6 {
		t.Errorf("cache stats %+v: the repeated requests were not answered from the cache", st)
	}
	deny := newAuth(t, tenant, func(c *middleware.Config) { c.DenyGuestUsers = true })
	guest := tenant.AccessToken(entratest.Guest(entratest.NewGUID()))
	for range 3 {
		if _, err := deny.Validate(t.Context(), guest); !errors.Is(err, middleware.ErrGuestUser) {
			t.Errorf("cached guest: %v, want ErrGuestUser", err)
		}
	}
}

// exp, nbf and iat are checked on every hit, against the configured clock.
func TestCachedTokensExpire(t *testing.T) {
	tenant := entratest.NewTenant(t)
	clk := newClock()
	a := newAuth(t, tenant, func(c *middleware.Config) { c.Now = clk.now })
	issued := clk.now()
	tok := tenant.AccessToken(entratest.IssuedAt(issued), entratest.Lifetime(time.Hour))
	if _, err := a.Validate(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour + 4*time.Minute) // within the leeway
	if _, err := a.Validate(t.Context(), tok); err != nil {
		t.Errorf("within the leeway after exp: %v", err)
	}
	clk.advance(2 * time.Minute)
	if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrTokenExpired) {
		t.Errorf("cached token past exp and leeway: %v, want ErrTokenExpired", err)
	}
	if st := a.Stats().Cache; st.Entries != 0 {
		t.Errorf("expired entry kept: %+v", st)
	}

	// A clock set back before nbf: the cached token is not valid yet.
	b := newAuth(t, tenant, func(c *middleware.Config) { c.Now = clk.now })
	tok2 := tenant.AccessToken(entratest.IssuedAt(clk.now()))
	if _, err := b.Validate(t.Context(), tok2); err != nil {
		t.Fatal(err)
	}
	clk.advance(-10 * time.Minute)
	if _, err := b.Validate(t.Context(), tok2); !errors.Is(err, middleware.ErrTokenNotYetValid) {
		t.Errorf("cached token before nbf: %v, want ErrTokenNotYetValid", err)
	}
	clk.advance(10 * time.Minute)
	if _, err := b.Validate(t.Context(), tok2); err != nil {
		t.Errorf("valid again: %v", err)
	}
}

// A cached token whose key leaves the key set is refused at once after the
// refresh that drops it.
func TestCachedTokensFollowTheirKey(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	old := s.SigningKey()
	a := newAuth(t, tenant, fast)
	tok := tenant.AccessToken()
	if _, err := a.Validate(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Validate(t.Context(), tok); err != nil || a.Stats().Cache.Hits != 1 {
		t.Fatalf("second request: %v, %+v; want a hit", err, a.Stats().Cache)
	}
	s.RotateKey()
	s.RetireKey(old)
	time.Sleep(1100 * time.Millisecond)
	// A token naming the new key makes the authenticator reload.
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
		t.Fatalf("token with the new key: %v", err)
	}
	for i := range 2 {
		if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrUnknownSigningKey) {
			t.Errorf("attempt %d: cached token whose key was retired: %v, want ErrUnknownSigningKey", i, err)
		}
	}
}

// Entries are found by signature and compared in full: a token that
// copies a cached token's signature, or its beginning, is a different
// token.
func TestCacheCannotBeConfusedByOtherTokens(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant, func(c *middleware.Config) { c.Scopes = []string{"Files.Read"} })
	good := tenant.AccessToken(entratest.Scopes("Files.Read"))
	if _, err := a.Validate(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	h, p, sig := parts(good)
	other := tenant.AccessToken(entratest.Scopes("Files.Read", "Admin"))
	_, otherPayload, _ := parts(other)
	forgeries := map[string]string{
		"another payload, the cached signature": h + "." + otherPayload + "." + sig,
		"one payload byte changed":              h + "." + flip(p, len(p)/2) + "." + sig,
		"the last payload byte changed":         h + "." + flip(p, len(p)-1) + "." + sig,
		"one signature byte changed":            h + "." + p + "." + flip(sig, 10),
		"the token with a suffix":               good + "A",
		"the token without its last byte":       good[:len(good)-1],
		"the signature alone":                   sig,
		"header and payload alone":              h + "." + p,
	}
	for name, tok := range forgeries {
		if _, err := a.Validate(t.Context(), tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := a.Validate(t.Context(), good); err != nil {
		t.Errorf("the cached token after the forgeries: %v", err)
	}
}

// flip changes the base64url character at i.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestCacheStaysWithinItsBounds(t *testing.T) {
	tenant := entratest.NewTenant(t)
	const size = 16
	a := newAuth(t, tenant, func(c *middleware.Config) { c.TokenCacheSize = size })
	var tokens []string
	for i := range 100 {
		tokens = append(tokens, tenant.AccessToken(entratest.Claim("n", i)))
	}
	for _, tok := range tokens {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	st := a.Stats().Cache
	if st.Entries > size || st.Evictions < 100-size || st.Bytes > size*4<<10 {
		t.Errorf("cache %+v: want at most %d entries within %d bytes", st, size, size*4<<10)
	}
	// Every token is still accepted, cached or not.
	for _, tok := range tokens {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}

	off := newAuth(t, tenant, func(c *middleware.Config) { c.TokenCacheSize = -1 })
	for range 3 {
		if _, err := off.Validate(t.Context(), tokens[0]); err != nil {
			t.Fatal(err)
		}
	}
	if st := off.Stats().Cache; st != (middleware.CacheStats{}) {
		t.Errorf("disabled cache reports %+v", st)
	}
}

// A flood of unique invalid tokens neither grows memory nor evicts the
// good entries: only tokens whose signature verified enter the cache.
func TestInvalidTokenFloodLeavesTheCacheAlone(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	var good []string
	for i := range 50 {
		good = append(good, tenant.AccessToken(entratest.Claim("n", i)))
	}
	for _, tok := range good {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	template := tenant.AccessToken()
	h, p, sig := parts(template)
	expired := tenant.AccessToken(entratest.Expired())
	_, expiredPayload, _ := parts(expired)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	// Unique invalid tokens of several kinds, each refused before any RSA
	// work: garbage, a payload that is not JSON, an expired token with a
	// unique signature, an unknown key ID.
	n := floodSize
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for w := range 2 {
		wg.Go(func() {
			buf := make([]byte, 24)
			for i := w; i < n; i += 2 {
				_, _ = rand.Read(buf)
				r := base64.RawURLEncoding.EncodeToString(buf)
				var tok string
				switch i % 4 {
				case 0:
					tok = r + "." + r + "." + r
				case 1:
					tok = h + "." + r + "." + sig
				case 2:
					tok = h + "." + expiredPayload + "." + r + sig[len(r):]
				case 3:
					tok = encJSON(t, map[string]any{"alg": "RS256", "kid": r, "typ": "JWT"}) + "." + p + "." + sig
				}
				if _, err := a.Validate(t.Context(), tok); err == nil {
					accepted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if accepted.Load() != 0 {
		t.Fatalf("%d invalid tokens accepted", accepted.Load())
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d invalid tokens: live heap %d -> %d KiB", n, before.HeapAlloc>>10, after.HeapAlloc>>10)
	if growth > 4<<20 {
		t.Errorf("live heap grew by %d KiB over %d invalid tokens", growth>>10, n)
	}
	hits := a.Stats().Cache.Hits
	for _, tok := range good {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Stats().Cache.Hits - hits; got != int64(len(good)) {
		t.Errorf("after the flood %d of %d good tokens hit the cache", got, len(good))
	}
}

// Many goroutines share the cache while keys rotate; run with -race.
func TestCacheUnderConcurrency(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	a := newAuth(t, tenant, fast, func(c *middleware.Config) { c.TokenCacheSize = 8 })
	var tokens []string
	for i := range 24 {
		tokens = append(tokens, tenant.AccessToken(entratest.Claim("n", i)))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for w := range 6 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := a.Validate(t.Context(), tokens[i%len(tokens)]); err != nil {
					failures.Add(1)
				}
				_ = a.Stats()
			}
		})
	}
	for range 2 {
		time.Sleep(600 * time.Millisecond)
		s.PublishKey(s.NewKey()) // a reload, keeping the signing key
		_, _ = a.Validate(t.Context(), tenant.AccessToken(entratest.SignedWith(s.PublishedKeys()[len(s.PublishedKeys())-1])))
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d valid tokens refused under concurrency", n)
	}
	if st := a.Stats().Cache; st.Entries > 8 || st.Hits == 0 || st.Evictions == 0 {
		t.Errorf("cache %+v", st)
	}
}

// rewritingAuthority serves a fake tenant's documents through edit, which
// may change them between loads: an authority whose metadata or keys
// change under the same names.
func rewritingAuthority(t *testing.T, tenant *entratest.Tenant, edit func(path string, doc map[string]any)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(tenant.Server().URL + r.URL.RequestURI())
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		edit(r.URL.Path, doc)
		if jwks, ok := doc["jwks_uri"].(string); ok {
			doc["jwks_uri"] = strings.Replace(jwks, tenant.Server().URL, "http://"+r.Host, 1)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// reload makes the authenticator load its keys again: a token naming an
// unknown key, once MinLoadInterval has passed.
func reload(t *testing.T, a *middleware.Authenticator, tenant *entratest.Tenant) {
	t.Helper()
	before := a.Stats().Sources[0].LastSuccess
	time.Sleep(1100 * time.Millisecond)
	_, _ = a.Validate(t.Context(), tenant.AccessToken(entratest.SignedWith(tenant.Server().NewKey())))
	eventually(t, 3*time.Second, "a reload", func() bool { return a.Stats().Sources[0].LastSuccess.After(before) })
}

// A cached token whose key the key set now restricts to another tenant is
// refused like a fresh one.
func TestCachedTokensFollowTheirKeysIssuer(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	a := newAuth(t, tenant, fast, func(c *middleware.Config) { c.Authorities[0] = c.Authorities[0].WithTokenVersions(middleware.TokenV2) })
	cached := tenant.AccessToken()
	if _, err := a.Validate(t.Context(), cached); err != nil {
		t.Fatal(err)
	}
	s.PublishKeyFor(s.SigningKey(), entratest.NewGUID())
	reload(t, a, tenant)
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); !errors.Is(err, middleware.ErrInvalidIssuer) {
		t.Fatalf("fresh token: %v, want ErrInvalidIssuer", err)
	}
	if _, err := a.Validate(t.Context(), cached); !errors.Is(err, middleware.ErrInvalidIssuer) {
		t.Errorf("cached token whose key was restricted to another tenant: %v, want ErrInvalidIssuer", err)
	}
}

// A cached token whose kid now names other key material, or whose issuer
// the metadata no longer announces, is refused.
func TestCachedTokensFollowTheirKeyMaterialAndIssuer(t *testing.T) {
	tenant := entratest.NewTenant(t)
	other := tenant.Server().NewKey()
	var swapKey, newIssuer atomic.Bool
	proxy := rewritingAuthority(t, tenant, func(path string, doc map[string]any) {
		if strings.HasSuffix(path, "openid-configuration") && newIssuer.Load() {
			// The same tenant, under another issuer URL.
			doc["issuer"] = "https://login.example.com/" + tenant.ID + "/v2.0"
		}
		if keys, ok := doc["keys"].([]any); ok && swapKey.Load() {
			for _, k := range keys {
				m := k.(map[string]any)
				m["n"] = base64.RawURLEncoding.EncodeToString(other.PublicKey().N.Bytes())
				delete(m, "x5c")
				delete(m, "x5t")
			}
		}
	})
	for name, flag := range map[string]*atomic.Bool{"key material": &swapKey, "issuer": &newIssuer} {
		t.Run(name, func(t *testing.T) {
			swapKey.Store(false)
			newIssuer.Store(false)
			a := newAuth(t, tenant, fast, func(c *middleware.Config) {
				c.Authorities[0] = c.Authorities[0].WithHost(proxy.URL)
				c.Authorities[0] = c.Authorities[0].WithTokenVersions(middleware.TokenV2)
			})
			tok := tenant.AccessToken()
			if _, err := a.Validate(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
			flag.Store(true)
			reload(t, a, tenant)
			if _, err := a.Validate(t.Context(), tok); err == nil {
				t.Errorf("cached token accepted after the %s changed", name)
			}
		})
	}
}

// A multi-tenant admission answer is not relied on beyond its cache time,
// for cached tokens too.
func TestCachedTokensAreReadmitted(t *testing.T) {
	m := newMultiTenant(t)
	clk := newClock()
	var admit atomic.Bool
	admit.Store(true)
	var calls atomic.Int64
	a := m.auth(t, middleware.Organizations, middleware.TenantAdmission{
		CheckCacheTTL: time.Minute,
		Check:         func(context.Context, string) (bool, error) { calls.Add(1); return admit.Load(), nil },
	}, func(c *middleware.Config) { c.Now = clk.now })
	tok := m.allowed.AccessToken(entratest.Lifetime(2 * time.Hour))
	for range 3 {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	admit.Store(false)
	clk.advance(30 * time.Second)
	if _, err := a.Validate(t.Context(), tok); err != nil || calls.Load() != 1 {
		t.Errorf("within the admission TTL: %v, %d checks; want the cached answer", err, calls.Load())
	}
	clk.advance(31 * time.Second)
	if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrTenantNotAllowed) {
		t.Errorf("cached token after its tenant's admission expired and was refused: %v, want ErrTenantNotAllowed", err)
	}
	if st := a.Stats().Cache; st.Hits < 3 {
		t.Errorf("cache %+v: the repeated requests were not cache hits", st)
	}
}
