package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/entragate/entragate/examples/grpc/orders"
	entragate "github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entragrpc"
	"github.com/entragate/entragate/middleware/entratest"
)

// started is the offline world and the service listening on loopback.
type started struct {
	w    *world
	auth *entragate.Authenticator
	addr string
}

func start(t *testing.T, server func(*entragate.Authenticator) (*grpc.Server, error)) *started {
	t.Helper()
	w, err := newWorld()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	a, err := entragate.New(t.Context(), w.apiConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	s, err := server(a)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return &started{w: w, auth: a, addr: ln.Addr().String()}
}

func (s *started) conn(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(s.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The offline command's own calls answer what it prints.
func TestOfflineDemo(t *testing.T) {
	for _, v := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_AUTHORITY_HOST", "ADDR"} {
		t.Setenv(v, "")
	}
	s := start(t, newServer)
	var out bytes.Buffer
	if err := s.w.demo(t.Context(), &out, s.addr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"OK: SERVING",
		"OK: map[caller:app " + s.w.reader.ClientID,
		"Unauthenticated: this API requires a bearer token",
		"Unauthenticated: the token is expired",
		"PermissionDenied: the token needs one of the app roles: Orders.Admin",
		`www-authenticate: Bearer error="insufficient_scope"`,
		"OK: [100",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// For the same tokens, the gRPC service and an HTTP route guarded by the
// same rule answer alike: status, message, challenge.
func TestGRPCAnswersAsHTTPDoes(t *testing.T) {
	s := start(t, newServer)
	rule := entragate.ScopeOrRole([]string{ReadScope}, []string{ReadRole})
	httpAPI := httptest.NewServer(s.auth.RequireAuth(entragate.Require(rule)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }))))
	t.Cleanup(httpAPI.Close)
	client := orders.NewClient(s.conn(t))
	tenant := s.w.tenant
	codeOf := map[int]codes.Code{200: codes.OK, 400: codes.Unauthenticated, 401: codes.Unauthenticated, 403: codes.PermissionDenied, 503: codes.Unavailable}
	for name, token := range map[string]string{
		"a user with the scope":     tenant.AccessToken(entratest.Scopes(ReadScope)),
		"a daemon with the role":    tenant.AppToken(entratest.Roles(ReadRole)),
		"a user without the scope":  tenant.AccessToken(entratest.Scopes("Other")),
		"a daemon without the role": tenant.AppToken(entratest.Roles("Other")),
		"expired":                   tenant.AccessToken(entratest.Scopes(ReadScope), entratest.Expired()),
		"another API's":             tenant.AccessToken(entratest.Scopes(ReadScope), entratest.Audience("api://other")),
		"forged":                    tenant.AccessToken(entratest.Scopes(ReadScope), entratest.SignedWith(tenant.Server().NewKey()), entratest.Header("kid", tenant.Server().SigningKey().ID)),
		"not a token":               "not.a.token",
		"no token":                  "",
	} {
		req, _ := http.NewRequest(http.MethodGet, httpAPI.URL, nil)
		ctx := context.Background()
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Description string `json:"error_description"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()

		var header metadata.MD
		_, err = client.Get(ctx, "1002", grpc.Header(&header))
		st := status.Convert(err)
		if st.Code() != codeOf[resp.StatusCode] {
			t.Errorf("%s: gRPC %v, HTTP %d", name, st.Code(), resp.StatusCode)
		}
		if resp.StatusCode == 200 {
			continue
		}
		if st.Message() != body.Description && !(resp.StatusCode == 401 && body.Description == "" && st.Message() == "this API requires a bearer token") {
			t.Errorf("%s: gRPC message %q, HTTP description %q", name, st.Message(), body.Description)
		}
		if got, want := strings.Join(header.Get("www-authenticate"), ""), resp.Header.Get("WWW-Authenticate"); got != want {
			t.Errorf("%s: gRPC www-authenticate %q, HTTP %q", name, got, want)
		}
	}
}

// The guard's AuthFunc is what go-grpc-middleware v2's auth interceptors
// take: the per-method rules and public methods hold through them.
func TestComposesWithGoGRPCMiddleware(t *testing.T) {
	s := start(t, func(a *entragate.Authenticator) (*grpc.Server, error) {
		guard, err := entragrpc.New(rules(a))
		if err != nil {
			return nil, err
		}
		srv := grpc.NewServer(grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(guard.AuthFunc)),
			grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(guard.AuthFunc)))
		orders.NewServer().Register(srv)
		return srv, nil
	})
	reader, err := s.w.credentials(s.w.reader)
	if err != nil {
		t.Fatal(err)
	}
	client := orders.NewClient(s.conn(t, grpc.WithPerRPCCredentials(reader)))
	if order, err := client.Get(t.Context(), "1001"); err != nil || order.AsMap()["caller"] != "app "+s.w.reader.ClientID {
		t.Errorf("Get as the reader: %v %v", order, err)
	}
	if err := client.Delete(t.Context(), "1001"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Delete as the reader: %v, want PermissionDenied", err)
	}
	if _, err := orders.NewClient(s.conn(t)).Get(t.Context(), "1001"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Get without a token: %v, want Unauthenticated", err)
	}
	stream, err := client.Watch(t.Context())
	if err == nil {
		_, err = stream.Recv()
	}
	if err != nil {
		t.Errorf("Watch as the reader: %v", err)
	}
}

// The credentials renew the token before it expires (MSAL's cache), and
// never send it without transport security except to loopback.
func TestRPCCredentials(t *testing.T) {
	s := start(t, newServer)
	srv := s.w.tenant.Server()
	reader, err := s.w.credentials(s.w.reader)
	if err != nil {
		t.Fatal(err)
	}
	client := orders.NewClient(s.conn(t, grpc.WithPerRPCCredentials(reader)))
	srv.ResetCounts()
	for range 5 {
		if _, err := client.Get(t.Context(), "1002"); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Requests(entratest.Token); n != 1 {
		t.Errorf("%d token requests for five calls with a token valid 75 minutes, want 1", n)
	}
	// A token with less left than MSAL's margin is renewed before each
	// call that would send it.
	admin, err := s.w.credentials(s.w.admin)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetTokenLifetime(2 * time.Minute)
	srv.ResetCounts()
	adminClient := orders.NewClient(s.conn(t, grpc.WithPerRPCCredentials(admin)))
	for range 3 {
		if _, err := adminClient.Get(t.Context(), "1002"); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Requests(entratest.Token); n != 3 {
		t.Errorf("%d token requests for three calls with tokens expiring within MSAL's margin, want 3 (renewed before expiry)", n)
	}
	srv.SetTokenLifetime(0)

	for uri, ok := range map[string]bool{
		"https://127.0.0.1:50051/orders.v1.Orders":    true,
		"https://localhost:50051/orders.v1.Orders":    true,
		"https://[::1]:50051/orders.v1.Orders":        true,
		"https://orders.example.com/orders.v1.Orders": false,
		"https://10.0.0.7:50051/orders.v1.Orders":     false,
	} {
		md, err := reader.GetRequestMetadata(t.Context(), uri)
		if ok && (err != nil || !strings.HasPrefix(md["authorization"], "Bearer ")) {
			t.Errorf("%s without TLS: %v, want the token", uri, err)
		}
		if !ok && (err == nil || md != nil) {
			t.Errorf("%s without TLS: sent %v, want a refusal", uri, md)
		}
	}
}
