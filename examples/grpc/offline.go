package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/entragate/entragate/examples/grpc/orders"
	"github.com/entragate/entragate/examples/grpc/rpccreds"
	"github.com/entragate/entragate/examples/internal/env"
	entragate "github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// world is the offline setting: a fake tenant (https, as MSAL wants) with
// the service's registration and two daemons.
type world struct {
	tenant        *entratest.Tenant
	reader, admin *entratest.App
}

func newWorld() (*world, error) {
	srv, err := entratest.Start("127.0.0.1:0", entratest.TLS(), entratest.FreshKeys())
	if err != nil {
		return nil, err
	}
	w := &world{tenant: srv.NewTenant()}
	w.tenant.ExposeScopes(ReadScope)
	w.reader = w.tenant.RegisterApp(entratest.App{Name: "order reader daemon", Secret: secret(), Roles: []string{ReadRole}})
	w.admin = w.tenant.RegisterApp(entratest.App{Name: "order admin daemon", Secret: secret(), Roles: []string{ReadRole, AdminRole}})
	return w, nil
}

func (w *world) Close() { w.tenant.Server().Close() }

// credentials are per-RPC credentials for one of the world's daemons.
func (w *world) credentials(app *entratest.App) (*rpccreds.Credentials, error) {
	cred, err := confidential.NewCredFromSecret(app.Secret)
	if err != nil {
		return nil, err
	}
	srv := w.tenant.Server()
	client, err := confidential.New(srv.URL+"/"+w.tenant.ID, app.ClientID, cred,
		confidential.WithHTTPClient(srv.Client()), confidential.WithInstanceDiscovery(false))
	if err != nil {
		return nil, err
	}
	return rpccreds.New(client, "api://"+w.tenant.ClientID+"/.default"), nil
}

// apiConfig trusts the world's tenant, over its https port.
func (w *world) apiConfig() entragate.Config {
	cfg := w.tenant.Config()
	cfg.HTTPClient = w.tenant.Server().Client()
	return cfg
}

func runOffline(ctx context.Context, out io.Writer, addr string) error {
	addr, err := env.OfflineAddr(addr, "127.0.0.1:50051")
	if err != nil {
		return err
	}
	w, err := newWorld()
	if err != nil {
		return err
	}
	defer w.Close()
	auth, err := entragate.New(ctx, w.apiConfig())
	if err != nil {
		return err
	}
	defer auth.Close()
	return serve(ctx, auth, addr, func(a net.Addr) {
		fmt.Fprintf(out, "entragate gRPC sample, OFFLINE MODE: orders.v1.Orders on %s, trusting a fake Entra tenant (%s) on loopback.\n\n", a, w.tenant.Server().URL)
		if err := w.demo(ctx, out, a.String()); err != nil {
			fmt.Fprintln(out, "demo:", err)
		}
		fmt.Fprintf(out, "\nServing until interrupted. grpc.health.v1.Health is public: grpcurl -plaintext %s grpc.health.v1.Health/Check\n", a)
	})
}

// demo calls the service as clients would, and prints each answer.
func (w *world) demo(ctx context.Context, out io.Writer, addr string) error {
	reader, err := w.credentials(w.reader)
	if err != nil {
		return err
	}
	plain, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer plain.Close()
	// Loopback: the credentials send the token without TLS only here.
	asReader, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(reader))
	if err != nil {
		return err
	}
	defer asReader.Close()

	health, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{})
	report(out, "health check, no token (public)", health.GetStatus().String(), err, nil)

	var header metadata.MD
	order, err := orders.NewClient(asReader).Get(ctx, "1001", grpc.Header(&header))
	report(out, "Get order 1001 as the reader daemon (role Orders.Read.All)", order.AsMap(), err, header)

	header = nil
	_, err = orders.NewClient(plain).Get(ctx, "1001", grpc.Header(&header))
	report(out, "Get order 1001 without a token", nil, err, header)

	header = nil
	expired := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+w.tenant.AppToken(entratest.Roles(ReadRole), entratest.Expired()))
	_, err = orders.NewClient(plain).Get(expired, "1001", grpc.Header(&header))
	report(out, "Get order 1001 with an expired token", nil, err, header)

	header = nil
	err = orders.NewClient(asReader).Delete(ctx, "1001", grpc.Header(&header))
	report(out, "Delete order 1001 as the reader daemon (needs Orders.Admin)", nil, err, header)

	stream, err := orders.NewClient(asReader).Watch(ctx)
	var ids string
	if err == nil {
		ids, err = stream.Recv()
	}
	report(out, "Watch orders as the reader daemon (a stream)", ids, err, nil)
	return nil
}

// report prints one call's answer.
func report(out io.Writer, what string, answer any, err error, header metadata.MD) {
	fmt.Fprintf(out, "# %s\n", what)
	if err != nil {
		st := status.Convert(err)
		fmt.Fprintf(out, "  %s: %s\n", st.Code(), st.Message())
	} else {
		fmt.Fprintf(out, "  OK: %v\n", answer)
	}
	if ch := header.Get("www-authenticate"); len(ch) > 0 {
		fmt.Fprintf(out, "  www-authenticate: %s\n", strings.Join(ch, ", "))
	}
}

// secret makes a client secret that exists only in this process.
func secret() string {
	b := make([]byte, 30)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
