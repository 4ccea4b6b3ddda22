package entragrpc_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entragrpc"
	"github.com/entragate/entragate/middleware/entratest"
)

// The protected service in these tests is gRPC's own health service:
// Check (unary) needs a scope, Watch (a server stream) an app role, List is
// public, and every other method falls to the zero Default rule.
const (
	checkMethod = "/grpc.health.v1.Health/Check"
	watchMethod = "/grpc.health.v1.Health/Watch"
	listMethod  = "/grpc.health.v1.Health/List"
)

type harness struct {
	tenant *entratest.Tenant
	auth   *middleware.Authenticator
	health *health.Server
	client healthpb.HealthClient

	mu      sync.Mutex
	claimed []*claims.Claims // the claims each handled call carried
}

func newHarness(t *testing.T, edit ...func(*middleware.Config)) *harness {
	t.Helper()
	h := &harness{tenant: entratest.NewTenant(t), health: health.NewServer()}
	cfg := h.tenant.Config()
	cfg.Realm = "health"
	for _, e := range edit {
		e(&cfg)
	}
	var err error
	if h.auth, err = middleware.New(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.auth.Close() })
	guard, err := entragrpc.New(entragrpc.Config{
		Authenticator: h.auth,
		Methods: map[string]middleware.Rule{
			checkMethod: middleware.AnyScope("Health.Read"),
			watchMethod: middleware.AnyRole("Health.Watch"),
		},
		Public: []string{listMethod},
	})
	if err != nil {
		t.Fatal(err)
	}
	// What the handlers see, recorded after the guard.
	record := func(ctx context.Context) {
		c, _ := claims.FromContext(ctx)
		h.mu.Lock()
		h.claimed = append(h.claimed, c)
		h.mu.Unlock()
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(guard.Unary, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			record(ctx)
			return next(ctx, req)
		}),
		grpc.ChainStreamInterceptor(guard.Stream, func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			record(ss.Context())
			return next(srv, ss)
		}),
	)
	healthpb.RegisterHealthServer(srv, h.health)
	h.client = healthpb.NewHealthClient(serveLoopback(t, srv))
	return h
}

// withAuth is ctx carrying the authorization values.
func withAuth(values ...string) context.Context {
	md := metadata.MD{}
	for _, v := range values {
		md.Append("authorization", v)
	}
	return metadata.NewOutgoingContext(context.Background(), md)
}

// call makes a Check call, returning its status, and the www-authenticate
// header and trailer.
func (h *harness) call(t *testing.T, ctx context.Context) (*status.Status, string, string) {
	t.Helper()
	var header, trailer metadata.MD
	_, err := h.client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header), grpc.Trailer(&trailer))
	return status.Convert(err), first(header, "www-authenticate"), first(trailer, "www-authenticate")
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Every answer: the code, the caller-safe message, and the challenge the
// HTTP side would send for the same token.
func TestAnswers(t *testing.T) {
	h := newHarness(t)
	good := h.tenant.AccessToken(entratest.Scopes("Health.Read"))
	httpSide := func(values ...string) (string, error) {
		_, err := h.auth.AuthorizeHeader(context.Background(), values, middleware.AnyScope("Health.Read"))
		return h.auth.Challenge(err), err
	}
	tests := []struct {
		name   string
		values []string
		code   codes.Code
	}{
		{"a token with the scope", []string{"Bearer " + good}, codes.OK},
		{"the scheme in lower case", []string{"bearer " + good}, codes.OK},
		{"no token", nil, codes.Unauthenticated},
		{"another scheme", []string{"Basic dXNlcjpwYXNz"}, codes.Unauthenticated},
		{"an empty value", []string{""}, codes.Unauthenticated},
		{"two values", []string{"Bearer " + good, "Bearer " + good}, codes.Unauthenticated},
		{"the scheme alone", []string{"Bearer "}, codes.Unauthenticated},
		{"expired", []string{"Bearer " + h.tenant.AccessToken(entratest.Scopes("Health.Read"), entratest.Expired())}, codes.Unauthenticated},
		{"an unknown key", []string{"Bearer " + h.tenant.AccessToken(entratest.Scopes("Health.Read"), entratest.SignedWith(h.tenant.Server().NewKey()))}, codes.Unauthenticated},
		{"an ID token", []string{"Bearer " + h.tenant.IDToken()}, codes.Unauthenticated},
		{"a huge token", []string{"Bearer " + good + strings.Repeat("A", 32<<10)}, codes.Unauthenticated},
		{"without the scope", []string{"Bearer " + h.tenant.AccessToken(entratest.Scopes("Other"))}, codes.PermissionDenied},
		{"a daemon without scopes", []string{"Bearer " + h.tenant.AppToken(entratest.Roles("Health.Watch"))}, codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, header, trailer := h.call(t, withAuth(tc.values...))
			wantChallenge, httpErr := httpSide(tc.values...)
			if st.Code() != tc.code {
				t.Fatalf("code %v (%s), want %v", st.Code(), st.Message(), tc.code)
			}
			if tc.code == codes.OK {
				return
			}
			var e *middleware.Error
			if !errors.As(httpErr, &e) || st.Message() != e.Description {
				t.Errorf("message %q, want the description %q", st.Message(), e.Description)
			}
			if header != wantChallenge || trailer != wantChallenge || wantChallenge == "" {
				t.Errorf("www-authenticate header %q, trailer %q; the HTTP side sends %q", header, trailer, wantChallenge)
			}
		})
	}
	// The handlers saw the claims of the good calls, the callers' own.
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.claimed) != 2 || h.claimed[0] == nil || h.claimed[0].ObjectID != h.tenant.User.ObjectID {
		t.Errorf("handlers saw %d calls, claims %+v", len(h.claimed), h.claimed)
	}
}

// The message is the caller-safe description, never the log-only cause.
func TestMessagesLeakNoCause(t *testing.T) {
	h := newHarness(t)
	st, _, _ := h.call(t, withAuth("Bearer "+h.tenant.AccessToken(entratest.SignedWith(h.tenant.Server().NewKey()))))
	if strings.Contains(st.Message(), "kid") || strings.Contains(st.Message(), "jwkset") || strings.Contains(st.Message(), "http") {
		t.Errorf("message %q carries the cause", st.Message())
	}
}

func TestUnlistedMethodsFailClosedAndPublicOnesAreOpen(t *testing.T) {
	h := newHarness(t)
	if _, err := h.client.List(context.Background(), &healthpb.HealthListRequest{}); err != nil {
		t.Errorf("public List without a token: %v", err)
	}
	// A method no entry names falls to the zero Default: every token is
	// refused, even one with every permission.
	guard, err := entragrpc.New(entragrpc.Config{Authenticator: h.auth})
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+h.tenant.AccessToken(entratest.Scopes("Health.Read"), entratest.Roles("Health.Watch"))))
	_, err = guard.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: checkMethod}, func(context.Context, any) (any, error) {
		t.Error("a method with no rule reached its handler")
		return nil, nil
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("a method with no rule: %v, want PermissionDenied", err)
	}
}

func TestUnavailableCarriesARetryDelay(t *testing.T) {
	h := newHarness(t, func(c *middleware.Config) { c.MinLoadInterval = time.Second })
	h.tenant.Server().SetFault(entratest.Keys, entratest.Unavailable)
	h.tenant.Server().RotateKey() // a key the guard has not seen, while keys cannot load
	time.Sleep(1100 * time.Millisecond)
	for name, ctx := range map[string]context.Context{
		"keys unavailable": withAuth("Bearer " + h.tenant.AccessToken(entratest.Scopes("Health.Read"))),
	} {
		st, header, _ := h.call(t, ctx)
		if st.Code() != codes.Unavailable {
			t.Fatalf("%s: %v %q, want Unavailable", name, st.Code(), st.Message())
		}
		var retry *errdetails.RetryInfo
		for _, d := range st.Details() {
			if r, ok := d.(*errdetails.RetryInfo); ok {
				retry = r
			}
		}
		if retry == nil || retry.RetryDelay.AsDuration() < time.Second {
			t.Errorf("%s: details %v, want a RetryInfo of at least a second", name, st.Details())
		}
		if header != "" {
			t.Errorf("%s: a challenge %q with Unavailable", name, header)
		}
	}
	h.auth.Close()
	if st, _, _ := h.call(t, withAuth("Bearer "+h.tenant.AccessToken(entratest.Scopes("Health.Read")))); st.Code() != codes.Unavailable {
		t.Errorf("after Close: %v, want Unavailable", st.Code())
	}
}

// A stream is checked as it starts; once started it outlives its token, as
// the package documents.
func TestStreams(t *testing.T) {
	h := newHarness(t, func(c *middleware.Config) { c.Leeway = -1 })
	bad, err := h.client.Watch(withAuth("Bearer "+h.tenant.AppToken(entratest.Roles("Other"))), &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = bad.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("stream without the role: %v, want PermissionDenied", err)
	}
	if none, err := h.client.Watch(context.Background(), &healthpb.HealthCheckRequest{}); err == nil {
		if _, err = none.Recv(); status.Code(err) != codes.Unauthenticated {
			t.Errorf("stream without a token: %v, want Unauthenticated", err)
		}
	}

	short := h.tenant.AppToken(entratest.Roles("Health.Watch"), entratest.Lifetime(1500*time.Millisecond))
	ctx, cancel := context.WithCancel(withAuth("Bearer " + short))
	defer cancel()
	stream, err := h.client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first message: %v %v", first, err)
	}
	time.Sleep(2 * time.Second) // the token expires
	h.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if next, err := stream.Recv(); err != nil || next.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("message after the token expired: %v %v, want the stream to go on", next, err)
	}
	// A new stream with the expired token is refused.
	again, err := h.client.Watch(withAuth("Bearer "+short), &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = again.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("new stream with the expired token: %v, want Unauthenticated", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	h := newHarness(t)
	good := h.tenant.AccessToken(entratest.Scopes("Health.Read"))
	forbidden := h.tenant.AccessToken(entratest.Scopes("Other"))
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			tok, want := good, codes.OK
			if i%2 == 1 {
				tok, want = forbidden, codes.PermissionDenied
			}
			if st, _, _ := h.call(t, withAuth("Bearer "+tok)); st.Code() != want {
				t.Errorf("call %d: %v, want %v", i, st.Code(), want)
			}
		})
	}
	wg.Wait()
}

func TestConfigIsChecked(t *testing.T) {
	tenant := entratest.NewTenant(t)
	auth, err := middleware.New(t.Context(), tenant.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	for name, cfg := range map[string]entragrpc.Config{
		"no authenticator":        {},
		"a name without slashes":  {Authenticator: auth, Methods: map[string]middleware.Rule{"Check": middleware.Authenticated()}},
		"a public name misspelt":  {Authenticator: auth, Public: []string{"grpc.health.v1.Health"}},
		"both public and a rule":  {Authenticator: auth, Methods: map[string]middleware.Rule{listMethod: middleware.Authenticated()}, Public: []string{listMethod}},
		"a method with two parts": {Authenticator: auth, Methods: map[string]middleware.Rule{"/a/b/c": middleware.Authenticated()}},
	} {
		if _, err := entragrpc.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// AuthFunc is the shape go-grpc-middleware v2's auth interceptors take: the
// method comes from the context.
func TestAuthFunc(t *testing.T) {
	h := newHarness(t)
	guard, err := entragrpc.New(entragrpc.Config{Authenticator: h.auth, Methods: map[string]middleware.Rule{checkMethod: middleware.AnyScope("Health.Read")}, Public: []string{listMethod}})
	if err != nil {
		t.Fatal(err)
	}
	var authFunc func(context.Context) (context.Context, error) = guard.AuthFunc
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		ctx, err := authFunc(ctx)
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	client := healthpb.NewHealthClient(serveLoopback(t, srv))
	if _, err := client.Check(withAuth("Bearer "+h.tenant.AccessToken(entratest.Scopes("Health.Read"))), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("with the scope: %v", err)
	}
	if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without a token: %v", err)
	}
	if _, err := client.List(context.Background(), &healthpb.HealthListRequest{}); err != nil {
		t.Errorf("public method: %v", err)
	}
}

// A step-up rule answers over gRPC as over HTTP: Unauthenticated, and the
// claims challenge in www-authenticate, which a client parses with
// claims.ParseClaimsChallenge; a token that stepped up passes.
func TestStepUpOverGRPC(t *testing.T) {
	tenant := entratest.NewTenant(t)
	auth, err := middleware.New(t.Context(), tenant.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	guard, err := entragrpc.New(entragrpc.Config{Authenticator: auth, Methods: map[string]middleware.Rule{
		checkMethod: middleware.All(middleware.AnyScope("Health.Read"), middleware.AuthContext("c1")),
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(guard.Unary))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	client := healthpb.NewHealthClient(serveLoopback(t, srv))

	var header metadata.MD
	_, err = client.Check(withAuth("Bearer "+tenant.AccessToken(entratest.Scopes("Health.Read"))), &healthpb.HealthCheckRequest{}, grpc.Header(&header))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without c1: %v, want Unauthenticated", err)
	}
	ch, perr := claims.ParseClaimsChallenge(header.Get("www-authenticate")...)
	if perr != nil || ch.Claims != `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}` || ch.Realm != tenant.ID {
		t.Errorf("challenge %v: %+v %v", header.Get("www-authenticate"), ch, perr)
	}
	if _, err := client.Check(withAuth("Bearer "+tenant.AccessToken(entratest.Scopes("Health.Read"), entratest.AuthContexts("c1"))), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("with c1: %v", err)
	}
	if _, err := client.Check(withAuth("Bearer "+tenant.AppToken(entratest.Roles("Health.Watch"))), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("app-only: %v, want PermissionDenied", err)
	}
}

// serveLoopback serves srv on a real loopback TCP listener until the test
// ends and returns a client connection to it.
func serveLoopback(tb testing.TB, srv *grpc.Server) *grpc.ClientConn {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}
