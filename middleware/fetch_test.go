package middleware_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// lure is a key server an attacker controls: it serves the metadata and
// key set of the victim tenant's issuer with the attacker's key, on every
// path and whatever host name the request names.
type lure struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newLure(t *testing.T, tenant *entratest.Tenant, attacker *entratest.Key) *lure {
	t.Helper()
	// The attacker's own fake server, whose key set holds its key, and
	// whose metadata names the victim's issuer.
	evil := entratest.NewServer()
	t.Cleanup(evil.Close)
	evil.UseKey(attacker)
	evil.PublishKey(attacker)
	l := &lure{}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.URL.Path, "keys") {
			resp, err := http.Get(evil.URL + "/common/discovery/keys") // entries without issuers
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			defer resp.Body.Close()
			_, _ = w.Write(mustRead(t, resp))
			return
		}
		// The key set URL looks legitimate: only where the answer comes
		// from betrays the attack.
		_, _ = w.Write([]byte(`{"issuer":"` + tenant.IssuerV2() + `","jwks_uri":"` + tenant.Server().URL + `/common/discovery/v2.0/keys"}`))
	}))
	t.Cleanup(l.srv.Close)
	return l
}

func mustRead(t *testing.T, resp *http.Response) []byte {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return []byte(b.String())
		}
	}
}

// dialEverythingTo returns a transport that connects every host name other
// than loopback addresses to addr: a resolver, proxy or service mesh the
// user's client might have.
func dialEverythingTo(addr string) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, target string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(target); net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
			target = addr
		}
		return (&net.Dialer{}).DialContext(ctx, network, target)
	}
	return tr
}

// redirector answers every request of the tenant's authority with a
// redirect to target.
func redirector(t *testing.T, target string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The transport rule (https, or plain http on loopback) holds for every URL
// actually fetched, redirects included, whatever client the user gives.
func TestRedirectsToPlainHTTPAreRefusedForAnyClient(t *testing.T) {
	tenant := entratest.NewTenant(t)
	attacker := tenant.Server().NewKey()
	forged := tenant.AccessToken(entratest.SignedWith(attacker))

	clients := map[string]func(addr string) *http.Client{
		"plain custom client": func(addr string) *http.Client {
			return &http.Client{Transport: dialEverythingTo(addr)}
		},
		"client with its own redirect policy": func(addr string) *http.Client {
			return &http.Client{Transport: dialEverythingTo(addr), CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
		},
	}
	for name, client := range clients {
		t.Run(name, func(t *testing.T) {
			l := newLure(t, tenant, attacker)
			// The authority host is loopback, so allowed; it redirects to a
			// non-loopback host over plain http, which the client would
			// connect to the lure.
			authority := redirector(t, "http://login.attacker.example")
			c := client(l.srv.Listener.Addr().String())
			userPolicy := c.CheckRedirect
			a := newAuth(t, tenant, fast, func(cfg *middleware.Config) {
				cfg.Authorities[0] = cfg.Authorities[0].WithHost(authority.URL)
				cfg.HTTPClient = c
			})
			_, err := a.Validate(t.Context(), forged)
			if err == nil {
				t.Fatal("a token signed with keys fetched over a plain-http redirect was accepted")
			}
			if !errors.Is(err, middleware.ErrKeysUnavailable) {
				t.Errorf("Validate: %v, want ErrKeysUnavailable", err)
			}
			if n := l.hits.Load(); n != 0 {
				t.Errorf("the lure received %d requests", n)
			}
			if st := a.Stats(); st.LastError == nil || !strings.Contains(st.LastError.Error(), "plain http") {
				t.Errorf("Stats.LastError = %v, want the refused redirect", st.LastError)
			}
			if (c.CheckRedirect == nil) != (userPolicy == nil) {
				t.Error("the user's client was modified")
			}
		})
	}
}

// rewritingTransport fetches everything from another URL, as a transport
// that follows redirects itself would, and reports where the answer came
// from in resp.Request.
type rewritingTransport struct{ to string }

func (rt rewritingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host = "http", strings.TrimPrefix(rt.to, "http://")
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	u := *r.URL
	u.Scheme, u.Host = "http", "keys.attacker.example"
	resp.Request = r.Clone(r.Context())
	resp.Request.URL = &u
	return resp, nil
}

// A client whose transport answers from elsewhere is caught by checking
// where each answer came from.
func TestAnswersFromRefusedLocationsAreRefused(t *testing.T) {
	tenant := entratest.NewTenant(t)
	attacker := tenant.Server().NewKey()
	l := newLure(t, tenant, attacker)
	a := newAuth(t, tenant, fast, func(c *middleware.Config) {
		c.HTTPClient = &http.Client{Transport: rewritingTransport{to: l.srv.URL}}
	})
	if _, err := a.Validate(t.Context(), tenant.AccessToken(entratest.SignedWith(attacker))); err == nil {
		t.Fatal("a token signed with keys answered from a plain-http location was accepted")
	}
	if st := a.Stats(); st.LastError == nil || !strings.Contains(st.LastError.Error(), "refused location") {
		t.Errorf("Stats.LastError = %v, want the refused location", st.LastError)
	}
}

// Redirects within the rule are followed, for the default and custom clients.
func TestRedirectsToAllowedLocationsAreFollowed(t *testing.T) {
	tenant := entratest.NewTenant(t)
	authority := redirector(t, tenant.Server().URL)
	for name, client := range map[string]*http.Client{"default client": nil, "custom client": {}} {
		t.Run(name, func(t *testing.T) {
			a := newAuth(t, tenant, func(c *middleware.Config) {
				c.Authorities[0] = c.Authorities[0].WithHost(authority.URL)
				c.HTTPClient = client
			})
			if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
				t.Errorf("after a loopback redirect: %v", err)
			}
		})
	}
}

// recordingTransport remembers every URL it is asked for, and answers
// what its inner transport answers.
type recordingTransport struct {
	mu   sync.Mutex
	urls []string
	next http.RoundTripper
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.urls = append(rt.urls, r.URL.String())
	rt.mu.Unlock()
	return rt.next.RoundTrip(r)
}

// A jwks_uri over plain http to a non-loopback host is refused before any
// request is made to it.
func TestPlainHTTPKeySetIsNeverRequested(t *testing.T) {
	tenant := entratest.NewTenant(t)
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"` + tenant.IssuerV2() + `","jwks_uri":"http://keys.example.com/discovery/v2.0/keys"}`))
	}))
	t.Cleanup(meta.Close)
	rt := &recordingTransport{next: http.DefaultTransport}
	a := newAuth(t, tenant, fast, func(c *middleware.Config) {
		c.Authorities[0] = c.Authorities[0].WithHost(meta.URL)
		c.HTTPClient = &http.Client{Transport: rt}
		c.Authorities[0] = c.Authorities[0].WithTokenVersions(middleware.TokenV2)
	})
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); !errors.Is(err, middleware.ErrKeysUnavailable) {
		t.Errorf("Validate: %v, want ErrKeysUnavailable", err)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, u := range rt.urls {
		if strings.Contains(u, "keys.example.com") {
			t.Errorf("requested %s", u)
		}
	}
	if st := a.Stats(); st.LastError == nil || !strings.Contains(st.LastError.Error(), "jwks_uri") {
		t.Errorf("Stats.LastError = %v, want the refused jwks_uri", st.LastError)
	}
}
