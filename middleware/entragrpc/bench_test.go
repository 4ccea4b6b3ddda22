package entragrpc_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entragrpc"
	"github.com/entragate/entragate/middleware/entratest"
)

// A unary call over loopback TCP with a token the cache has seen, against
// the same call to a server without the interceptor (the token is sent
// either way). Compare with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 10 | tee grpc.txt
//	benchstat -col /guard grpc.txt
func BenchmarkUnaryCall(b *testing.B) {
	tenant := entratest.NewTenant(b)
	auth, err := middleware.New(b.Context(), tenant.Config())
	if err != nil {
		b.Fatal(err)
	}
	defer auth.Close()
	guard, err := entragrpc.New(entragrpc.Config{Authenticator: auth, Default: middleware.AnyScope("Health.Read")})
	if err != nil {
		b.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tenant.AccessToken(entratest.Scopes("Health.Read")))
	for _, tc := range []struct {
		name string
		opts []grpc.ServerOption
	}{{"none", nil}, {"entragrpc", []grpc.ServerOption{grpc.UnaryInterceptor(guard.Unary)}}} {
		b.Run("guard="+tc.name, func(b *testing.B) {
			srv := grpc.NewServer(tc.opts...)
			healthpb.RegisterHealthServer(srv, health.NewServer())
			client := healthpb.NewHealthClient(serveLoopback(b, srv))
			if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
