// Package entragrpc protects gRPC services with entragate: unary and stream
// server interceptors that validate the bearer token of each call and apply
// a rule per method, the same rules, reasons and challenges as the HTTP
// middleware. It is a module of its own, so that HTTP-only users never
// download gRPC.
//
//	guard, err := entragrpc.New(entragrpc.Config{
//		Authenticator: auth, // from middleware.New or Provider.NewAuthenticator
//		Methods: map[string]middleware.Rule{
//			"/orders.v1.Orders/":          middleware.ScopeOrRole([]string{"Orders.Read"}, []string{"Orders.Read.All"}),
//			"/orders.v1.Orders/Delete":    middleware.AnyRole("Orders.Admin"),
//		},
//		Public: []string{"/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/"},
//	})
//	srv := grpc.NewServer(grpc.UnaryInterceptor(guard.Unary), grpc.StreamInterceptor(guard.Stream))
//
// Handlers read the caller's claims with claims.FromContext, as HTTP
// handlers do.
//
// # Answers
//
// A call without a token, or with an invalid one, fails with
// codes.Unauthenticated; a valid token that lacks the method's permission
// (or a refused guest) with codes.PermissionDenied; a call that cannot be
// checked now (keys or tenant admission unavailable, the guard closed)
// with codes.Unavailable and a google.rpc.RetryInfo detail saying when to
// retry. The status message is the refusal's caller-safe description,
// never its log-only cause. The WWW-Authenticate challenge the HTTP side
// would send is returned too, in the www-authenticate response header
// (and trailer), for clients that act on it.
//
// # Streams
//
// A stream is checked once, when it starts, as an HTTP request is checked
// when it starts: a token that expires while the stream runs does not end
// it. A handler that must not outlive the token ends the stream itself at
// the claims' ExpiresAt.
//
// # With go-grpc-middleware
//
// AuthFunc has the shape of go-grpc-middleware v2's auth.AuthFunc, so the
// guard composes with that package's interceptors without entragrpc
// depending on it:
//
//	grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(guard.AuthFunc))
//	grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(guard.AuthFunc))
//
// It reads the method from the context (grpc.Method), so the per-method
// rules and public methods apply there too; a public method's context is
// returned unchanged.
package entragrpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/entragate/entragate/middleware"
)

// Config configures the interceptors.
type Config struct {
	// Authenticator validates the tokens: its API's rules (audiences,
	// APIConfig.Scopes and Roles, guests) apply to every protected call.
	// Required.
	Authenticator *middleware.Authenticator

	// Methods maps a full method name ("/orders.v1.Orders/Get") or a
	// service, written with its trailing slash ("/orders.v1.Orders/"), to
	// the rule its calls need. A method's own entry wins over its
	// service's.
	Methods map[string]middleware.Rule

	// Default is the rule of a protected method Methods does not name. The
	// zero Rule refuses every token: an unlisted method fails closed. Set
	// it to middleware.Authenticated() to let any accepted token in.
	Default middleware.Rule

	// Public lists the methods, or services with their trailing slash,
	// that need no token: health checks, reflection. Their calls carry no
	// claims.
	Public []string
}

// Interceptors are the guard's server interceptors.
type Interceptors struct {
	auth    *middleware.Authenticator
	methods map[string]middleware.Rule
	def     middleware.Rule
	public  map[string]bool
}

// New checks cfg and returns the interceptors.
func New(cfg Config) (*Interceptors, error) {
	if cfg.Authenticator == nil {
		return nil, errors.New("entragrpc: Config.Authenticator is required")
	}
	in := &Interceptors{auth: cfg.Authenticator, def: cfg.Default, methods: map[string]middleware.Rule{}, public: map[string]bool{}}
	for name, rule := range cfg.Methods {
		if err := checkName(name); err != nil {
			return nil, err
		}
		in.methods[name] = rule
	}
	for _, name := range cfg.Public {
		if err := checkName(name); err != nil {
			return nil, err
		}
		if _, both := cfg.Methods[name]; both {
			return nil, fmt.Errorf("entragrpc: %s is both public and in Methods", name)
		}
		in.public[name] = true
	}
	return in, nil
}

// checkName refuses what is no full method name or service: a rule that
// matches nothing would leave its method to Default silently.
func checkName(name string) error {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[0] != "" || parts[1] == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("entragrpc: %q is not a full method name (/package.Service/Method) or a service (/package.Service/)", name)
	}
	return nil
}

// ruleFor is the rule of a full method name, and whether it is public.
func (in *Interceptors) ruleFor(method string) (rule middleware.Rule, public bool) {
	service := method[:strings.LastIndexByte(method, '/')+1]
	switch {
	case in.public[method]:
		return middleware.Rule{}, true
	case hasRule(in.methods, method):
		return in.methods[method], false
	case in.public[service]:
		return middleware.Rule{}, true
	case hasRule(in.methods, service):
		return in.methods[service], false
	}
	return in.def, false
}

func hasRule(m map[string]middleware.Rule, key string) bool {
	_, ok := m[key]
	return ok
}

// Unary is the unary server interceptor.
func (in *Interceptors) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := in.authorize(ctx, info.FullMethod, func(md metadata.MD) { _ = grpc.SetHeader(ctx, md); _ = grpc.SetTrailer(ctx, md) })
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is the stream server interceptor: the stream is checked once, as
// it starts.
func (in *Interceptors) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := in.authorize(ss.Context(), info.FullMethod, func(md metadata.MD) { _ = ss.SetHeader(md); ss.SetTrailer(md) })
	if err != nil {
		return err
	}
	return handler(srv, &claimsStream{ServerStream: ss, ctx: ctx})
}

// AuthFunc has the shape of go-grpc-middleware v2's auth.AuthFunc: it
// authorizes the call whose method grpc.Method(ctx) names, and returns the
// context with its claims.
func (in *Interceptors) AuthFunc(ctx context.Context) (context.Context, error) {
	method, ok := grpc.Method(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "entragrpc: no gRPC method in the context")
	}
	return in.authorize(ctx, method, func(md metadata.MD) { _ = grpc.SetHeader(ctx, md); _ = grpc.SetTrailer(ctx, md) })
}

// authorize checks the call's token against the method's rule, and returns
// the context carrying its claims, or the status to fail with (after
// sending the challenge with send).
func (in *Interceptors) authorize(ctx context.Context, method string, send func(metadata.MD)) (context.Context, error) {
	rule, public := in.ruleFor(method)
	if public {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	authorized, err := in.auth.AuthorizeHeader(ctx, md.Get("authorization"), rule)
	if err != nil {
		if ch := in.auth.Challenge(err); ch != "" {
			send(metadata.Pairs("www-authenticate", ch))
		}
		return nil, statusOf(err)
	}
	return authorized, nil
}

// statusOf maps a refusal to its gRPC status.
func statusOf(err error) error {
	var e *middleware.Error
	if !errors.As(err, &e) {
		return status.Error(codes.Internal, "entragrpc: the token could not be checked")
	}
	switch e.Status {
	case http.StatusForbidden:
		return status.Error(codes.PermissionDenied, e.Description)
	case http.StatusServiceUnavailable:
		st := status.New(codes.Unavailable, e.Description)
		retry := time.Duration(max(e.RetryAfterSeconds, 1)) * time.Second
		if withRetry, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}); err == nil {
			st = withRetry
		}
		return st.Err()
	}
	return status.Error(codes.Unauthenticated, e.Description)
}

// claimsStream is a server stream whose context carries the claims.
type claimsStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *claimsStream) Context() context.Context { return s.ctx }
