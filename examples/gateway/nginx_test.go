package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/examples/internal/demotest"
	entragate "github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// stack is a real nginx with the README's configuration, in front of a
// Python service, with the forward-auth service deciding, all on loopback.
type stack struct {
	gateway, plain string // through auth_request; the same service without it
	auth           *service
	nginx          *exec.Cmd
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t testing.TB, addr, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not listen on %s", what, addr)
}

// startStack starts the Python upstream, the forward-auth service (offline,
// the sample rules) and nginx with nginx/entragate.conf, the file the
// README shows, its three addresses replaced.
func startStack(t testing.TB, edit ...func(*entragate.Config)) *stack {
	return startStackWith(t, false, edit...)
}

// startStackWith starts the stack; with fast, the upstream is nginx's own
// "return 200", so that a benchmark measures the gateway, not Python.
func startStackWith(t testing.TB, fast bool, edit ...func(*entragate.Config)) *stack {
	t.Helper()
	nginxBin := demotest.Program(t, "NGINX", "nginx", "/usr/sbin/nginx")
	for _, v := range append(append([]string{}, gatewayVariables...), "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_AUTHORITY_HOST") {
		if tt, ok := t.(*testing.T); ok {
			tt.Setenv(v, "")
		}
	}
	os.Setenv("ADDR", "127.0.0.1:0")
	defer os.Unsetenv("ADDR")

	upstream := freePort(t)
	if !fast {
		python := demotest.Program(t, "PYTHON3", "python3")
		_, port, _ := net.SplitHostPort(upstream)
		py := exec.Command(python, "upstream/echo.py", port)
		py.Stderr = os.Stderr
		if err := py.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = py.Process.Kill(); _ = py.Wait() })
		waitListening(t, upstream, "the Python upstream")
	}

	auth, err := start(context.Background(), io.Discard, edit...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)

	snippet, err := os.ReadFile("nginx/entragate.conf")
	if err != nil {
		t.Fatal(err)
	}
	gw, plain := freePort(t), freePort(t)
	conf := strings.NewReplacer(
		"server 127.0.0.1:8081;", "server "+upstream+";",
		"server 127.0.0.1:9000;", "server "+strings.TrimPrefix(auth.URL, "http://")+";",
		"listen 127.0.0.1:8000;", "listen "+gw+";",
	).Replace(string(snippet))
	dir := t.TempDir()
	main := fmt.Sprintf(`worker_processes 1;
error_log %[1]s/error.log warn;
pid %[1]s/nginx.pid;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
%[4]s    include %[1]s/entragate.conf;
    # The same service without auth_request, for speed comparisons only.
    server { listen %[2]s; location / { proxy_pass http://orders; } }
%[3]s}
`, dir, plain, fastUpstream(fast, upstream), mimeTypes())
	for name, content := range map[string]string{"nginx.conf": main, "entragate.conf": conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(nginxBin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if b, _ := os.ReadFile(filepath.Join(dir, "error.log")); len(b) > 0 && t.Failed() {
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	waitListening(t, gw, "nginx")
	return &stack{gateway: "http://" + gw, plain: "http://" + plain, auth: auth, nginx: cmd}
}

// mimeTypes includes Debian's MIME types as its nginx.conf does, so that
// the refusals' Content-Type is tested where extensions have types.
func mimeTypes() string {
	if _, err := os.Stat("/etc/nginx/mime.types"); err != nil {
		return ""
	}
	return "    include /etc/nginx/mime.types;\n"
}

// fastUpstream is an nginx server block standing in for the service, for
// benchmarks.
func fastUpstream(fast bool, addr string) string {
	if !fast {
		return ""
	}
	return "    server { listen " + addr + "; location / { return 200 'ok'; } }\n"
}

// echo is what the Python upstream saw, or the gateway's refusal.
type echo struct {
	status  int
	header  http.Header
	body    []byte
	Caller  *string           `json:"caller"`
	Headers map[string]string `json:"headers"`
	Error   string            `json:"error"`
}

func send(t testing.TB, method, url string, headers ...string) echo {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if base, target, ok := strings.Cut(url, "#"); ok { // sent as written, # and all
		req, _ = http.NewRequest(method, base, nil)
		req.URL.Opaque = req.URL.Path + "#" + target
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	e := echo{status: resp.StatusCode, header: resp.Header}
	e.body, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(e.body, &e)
	return e
}

func TestThroughNginx(t *testing.T) {
	s := startStack(t, func(c *entragate.Config) { c.MinLoadInterval = time.Second; c.FetchTimeout = 300 * time.Millisecond })
	tenant := s.auth.setup.Tenant
	reader := tenant.AccessToken(entratest.Scopes("Orders.Read"))
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	t.Run("a good token reaches the upstream with the caller's identity", func(t *testing.T) {
		e := send(t, "GET", s.gateway+"/api/orders/42", bearer(reader)...)
		if e.status != 200 || e.Caller == nil || *e.Caller != tenant.User.ObjectID {
			t.Fatalf("%d %s", e.status, e.body)
		}
		if e.Headers["X-Entra-Tenant-Id"] != tenant.ID || e.Headers["X-Entra-Scopes"] != "Orders.Read" || e.Headers["X-Entra-Token-Type"] != "user" {
			t.Errorf("identity headers %v", e.Headers)
		}
	})
	t.Run("a bad token gets 401 with the challenge and entragate's body", func(t *testing.T) {
		e := send(t, "GET", s.gateway+"/api/orders/42", bearer(tenant.AccessToken(entratest.Expired()))...)
		if e.status != 401 || !strings.HasPrefix(e.header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) || e.Error != "invalid_token" {
			t.Errorf("%d %q %s", e.status, e.header.Values("WWW-Authenticate"), e.body)
		}
		if n := len(e.header.Values("WWW-Authenticate")); n != 1 {
			t.Errorf("%d WWW-Authenticate headers", n)
		}
	})
	t.Run("no token gets 401 without an error code", func(t *testing.T) {
		e := send(t, "GET", s.gateway+"/api/orders/42")
		if e.status != 401 || e.header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("%d %q", e.status, e.header.Values("WWW-Authenticate"))
		}
	})
	t.Run("a forbidden one gets 403 insufficient_scope", func(t *testing.T) {
		e := send(t, "POST", s.gateway+"/api/orders", bearer(reader)...)
		if e.status != 403 || !strings.Contains(e.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) || e.Error != "insufficient_scope" ||
			len(e.header.Values("WWW-Authenticate")) != 1 {
			t.Errorf("%d %q %s", e.status, e.header.Values("WWW-Authenticate"), e.body)
		}
	})
	t.Run("a client's identity headers never reach the upstream", func(t *testing.T) {
		forged := entratest.NewGUID()
		var headers []string
		for _, name := range []string{"Object-Id", "Tenant-Id", "Client-App-Id", "Token-Type", "Scopes", "Roles", "Name", "Username"} {
			headers = append(headers, "X-Entra-"+name, "forged-"+forged)
		}
		e := send(t, "GET", s.gateway+"/api/orders/42", append(bearer(reader), headers...)...)
		if e.status != 200 || *e.Caller != tenant.User.ObjectID || e.Headers["X-Entra-Roles"] != "" {
			t.Errorf("with a valid token: %d %s", e.status, e.body)
		}
		if strings.Contains(string(e.body), forged) {
			t.Errorf("a forged identity header reached the upstream: %s", e.body)
		}
		e = send(t, "GET", s.gateway+"/healthz", "X-Entra-Object-Id", forged)
		if e.status != 200 || e.Caller != nil {
			t.Errorf("on a public path: %d %s", e.status, e.body)
		}
	})
	t.Run("a malformed Authorization header gets 400 invalid_request", func(t *testing.T) {
		for _, value := range []string{"Bearer ", "Bearer a b"} {
			e := send(t, "GET", s.gateway+"/api/orders/42", "Authorization", value)
			if e.status != 400 || e.Error != "invalid_request" || !strings.Contains(e.header.Get("WWW-Authenticate"), `error="invalid_request"`) ||
				e.header.Get("Retry-After") != "" || e.header.Get("Content-Type") != "application/json; charset=utf-8" ||
				e.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%q: %d %v %s", value, e.status, e.header, e.body)
			}
		}
	})
	t.Run("a token with many roles reaches the upstream with all of them", func(t *testing.T) {
		roles := make([]string, 120)
		for i := range roles {
			roles[i] = fmt.Sprintf("Orders.Role%03d.ReadWriteEverything", i)
		}
		e := send(t, "GET", s.gateway+"/api/orders/42", bearer(tenant.AccessToken(entratest.Scopes("Orders.Read"), entratest.Roles(roles...)))...)
		if e.status != 200 || e.Headers["X-Entra-Roles"] != strings.Join(roles, " ") {
			t.Errorf("%d %.300s", e.status, e.body)
		}
	})
	t.Run("a method override must pass the route of its method too", func(t *testing.T) {
		if e := send(t, "GET", s.gateway+"/api/orders/42", append(bearer(reader), "X-HTTP-Method-Override", "DELETE")...); e.status != 403 {
			t.Errorf("%d %s", e.status, e.body)
		}
	})
	t.Run("refusals are JSON whatever the path's extension", func(t *testing.T) {
		for _, tc := range []struct {
			method, uri string
			headers     []string
			status      int
		}{{"GET", "/api/orders/42.html", nil, 401}, {"POST", "/api/orders/42.svg", bearer(reader), 403}, {"GET", "/api/orders/42.js", []string{"Authorization", "Bearer "}, 400}} {
			e := send(t, tc.method, s.gateway+tc.uri, tc.headers...)
			if e.status != tc.status || e.header.Get("Content-Type") != "application/json; charset=utf-8" ||
				e.header.Get("X-Content-Type-Options") != "nosniff" || e.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s: %d %v", tc.method, tc.uri, e.status, e.header)
			}
		}
	})
	t.Run("the check's location is internal", func(t *testing.T) {
		if e := send(t, "GET", s.gateway+"/_entragate", bearer(reader)...); e.status != 404 {
			t.Errorf("%d %s", e.status, e.body)
		}
	})
	t.Run("a public path needs no token", func(t *testing.T) {
		if e := send(t, "GET", s.gateway+"/public/price-list"); e.status != 200 {
			t.Errorf("%d %s", e.status, e.body)
		}
	})
	t.Run("path tricks never make a protected path public", func(t *testing.T) {
		for uri, want := range map[string]int{
			"/public/%2e%2e/admin":     403,
			"/public/%2E%2E%2Fadmin":   403,
			"/public/..;/admin":        403,
			"/public;/admin":           403,
			"/PUBLIC/price-list":       401,
			"//admin":                  403,
			"//healthz/admin/users":    403, // host healthz, path /admin/users, to URL parsers
			"/admin.json":              401,
			"/ADMIN/users":             401,
			"/adm%69n/users":           401,
			"/other":                   401,
			"/public#/../admin":        403,
			"/public/%252e%252e/admin": 403,
			"/admin.":                  403,
			"/adm%C4%B1n/users":        401, // ı: the admin route, protected
		} {
			if e := send(t, "GET", s.gateway+uri); e.status != want {
				t.Errorf("%s: %d, want %d (%s)", uri, e.status, want, e.body)
			}
		}
	})
	t.Run("a step-up's claims challenge passes through", func(t *testing.T) {
		e := send(t, "POST", s.gateway+"/api/payments", bearer(tenant.AccessToken(entratest.Scopes("Payments.Write")))...)
		ch, err := claims.ParseClaimsChallenge(e.header.Values("WWW-Authenticate")...)
		if e.status != 401 || err != nil || ch.Claims != `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}` {
			t.Errorf("%d %q %v", e.status, e.header.Values("WWW-Authenticate"), err)
		}
		if e := send(t, "POST", s.gateway+"/api/payments", bearer(tenant.AccessToken(entratest.Scopes("Payments.Write"), entratest.AuthContexts("c1")))...); e.status != 200 {
			t.Errorf("after the step-up: %d %s", e.status, e.body)
		}
	})
	t.Run("Entra unavailable: 503 with Retry-After", func(t *testing.T) {
		tenant.Server().SetFault(entratest.All, entratest.Unavailable)
		defer tenant.Server().SetFault(entratest.All, entratest.NoFault)
		time.Sleep(1100 * time.Millisecond) // past MinLoadInterval: a new key means a load, which fails
		e := send(t, "GET", s.gateway+"/api/orders/42", bearer(tenant.AccessToken(entratest.Scopes("Orders.Read"), entratest.SignedWith(tenant.Server().NewKey())))...)
		if e.status != 503 || e.header.Get("Retry-After") == "" || e.Error != "temporarily_unavailable" {
			t.Errorf("%d Retry-After %q %s", e.status, e.header.Get("Retry-After"), e.body)
		}
	})
	t.Run("the forward-auth service down: 503", func(t *testing.T) {
		s.auth.Close()
		e := send(t, "GET", s.gateway+"/api/orders/42", bearer(reader)...)
		if e.status != 503 || e.Error != "temporarily_unavailable" {
			t.Errorf("%d %s", e.status, e.body)
		}
	})
}

// The README shows the nginx configuration the test runs, byte for byte.
func TestREADMEShowsTheTestedConfiguration(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile("nginx/entragate.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```nginx\n"+string(conf)+"```\n") {
		t.Error("README.md does not show examples/gateway/nginx/entragate.conf as it is")
	}
}

// BenchmarkNginx measures requests through nginx to the Python service,
// with auth_request and a cached token, and without auth_request, one
// after the other on the same machine: go test -run '^$' -bench Nginx.
func BenchmarkNginx(b *testing.B) {
	s := startStackWith(b, true)
	token := "Bearer " + s.auth.setup.Tenant.AccessToken(entratest.Scopes("Orders.Read"))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for name, base := range map[string]string{"auth_request": s.gateway, "no_auth": s.plain} {
		b.Run(name, func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, base+"/api/orders/42", nil)
					req.Header.Set("Authorization", token)
					resp, err := client.Do(req)
					if err != nil || resp.StatusCode != 200 {
						b.Error(err, resp)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
