// Command grpc is a small gRPC service protected by entragate's
// interceptors (middleware/entragrpc), with a rule per method and gRPC's
// health and reflection services public:
//
//	cd examples/grpc && go run .
//
// With no configuration it runs offline: a fake Entra tenant on loopback,
// with two daemon registrations, and the service on 127.0.0.1:50051. It
// then calls itself as a client would (MSAL for Go's client credentials,
// the token sent by per-RPC credentials, package rpccreds) and prints what
// each call answered: an allowed call, one without a token
// (Unauthenticated), one the daemon is not allowed (PermissionDenied).
//
// Against a real tenant, set AZURE_TENANT_ID and AZURE_CLIENT_ID (the
// API's registration; AZURE_AUTHORITY_HOST for another cloud) and ADDR;
// cmd/client calls it with a daemon's registration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/entragate/entragate/examples/grpc/orders"
	"github.com/entragate/entragate/examples/internal/env"
	entragate "github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entragrpc"
)

// The service's permissions, as registered in Entra.
const (
	ReadScope = "Orders.Read"     // delegated, for users
	ReadRole  = "Orders.Read.All" // application, for daemons
	AdminRole = "Orders.Admin"
)

// rules are the service's per-method rules: every orders method needs to
// read orders, Delete needs the admin role, gRPC's health and reflection
// services are public, and any other method is refused.
func rules(auth *entragate.Authenticator) entragrpc.Config {
	return entragrpc.Config{
		Authenticator: auth,
		Methods: map[string]entragate.Rule{
			orders.Service:      entragate.ScopeOrRole([]string{ReadScope}, []string{ReadRole}),
			orders.DeleteMethod: entragate.AnyRole(AdminRole),
		},
		Public: []string{"/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"},
	}
}

// newServer is the gRPC server with the guard and the services.
func newServer(auth *entragate.Authenticator) (*grpc.Server, error) {
	guard, err := entragrpc.New(rules(auth))
	if err != nil {
		return nil, err
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(guard.Unary), grpc.StreamInterceptor(guard.Stream))
	orders.NewServer().Register(s)
	healthpb.RegisterHealthServer(s, health.NewServer())
	reflection.Register(s)
	return s, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "grpc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	v := env.New("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_AUTHORITY_HOST", "ADDR")
	if !v.Any("AZURE_TENANT_ID", "AZURE_CLIENT_ID") {
		if err := v.Err(); err != nil {
			return err
		}
		return runOffline(ctx, out, v.String("ADDR"))
	}
	cfg, err := onlineConfig(v)
	if err != nil {
		return err
	}
	auth, err := entragate.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer auth.Close()
	addr := v.String("ADDR")
	if addr == "" {
		addr = ":50051"
	}
	return serve(ctx, auth, addr, func(net.Addr) {})
}

// onlineConfig is the API's configuration for a real tenant.
func onlineConfig(v *env.Vars) (entragate.Config, error) {
	tenant := v.Required("AZURE_TENANT_ID", "the directory (tenant) ID of the API's registration")
	clientID := v.GUID("AZURE_CLIENT_ID", "the application (client) ID of the API's registration")
	v.Required("AZURE_CLIENT_ID", "the application (client) ID of the API's registration")
	host := v.Host("AZURE_AUTHORITY_HOST")
	if err := v.Err(); err != nil {
		return entragate.Config{}, err
	}
	a := entragate.EntraTenant(tenant)
	if host != "" {
		a = a.WithHost(host)
	}
	return entragate.Config{ClientID: clientID, Authorities: []entragate.Authority{a}}, nil
}

// serve runs the server on addr until ctx ends; ready is called once it
// listens.
func serve(ctx context.Context, auth *entragate.Authenticator, addr string, ready func(net.Addr)) error {
	s, err := newServer(auth)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	ready(ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		s.GracefulStop()
		return nil
	}
}
