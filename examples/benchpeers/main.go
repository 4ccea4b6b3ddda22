// Command benchpeers runs one request, a 1.4 KiB Entra v2 access token
// sent to a handler that reads the caller's name, through entragate and
// through the Go libraries teams use for the same job, on the same token
// and keys in one run, and prints the table:
//
//	cd examples/benchpeers && go run .
//
// Its own module keeps those libraries out of entragate's dependencies.
// For benchstat, the same comparisons are benchmarks:
//
//	go test -run '^$' -bench . -benchmem -count 6 | tee peers.txt
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"
)

func main() {
	testing.Init()
	benchtime := flag.Duration("benchtime", time.Second, "time per benchmark")
	flag.Parse()
	_ = flag.Set("test.benchtime", benchtime.String())

	s, err := newSetup(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchpeers:", err)
		os.Exit(1)
	}
	defer s.close()

	floorResult := testing.Benchmark(func(b *testing.B) { benchFloor(b, s) })
	fmt.Printf("%s, %s/%s, GOMAXPROCS %d, %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), cpuModel())
	fmt.Printf("token %d bytes; floor (SHA-256 + RSA-2048 verify + claims decode): %s\n\n", len(s.tokens[0]), perOp(floorResult))
	fmt.Printf("%-28s %-12s %12s %10s %8s %10s\n", "middleware", "token", "ns/op", "B/op", "allocs", "× floor")
	var reference map[string]float64 = map[string]float64{}
	rows := []struct {
		peer, kind string
		r          testing.BenchmarkResult
	}{}
	for _, p := range s.peers {
		for _, kind := range []string{"first seen", "repeated"} {
			r := testing.Benchmark(func(b *testing.B) { benchPeer(b, s, p, kind == "repeated", false) })
			rows = append(rows, struct {
				peer, kind string
				r          testing.BenchmarkResult
			}{p.name, kind, r})
			if p.name == "entragate" {
				reference[kind] = float64(r.NsPerOp())
			}
			fmt.Printf("%-28s %-12s %12d %10d %8d %10.2f\n", p.name, kind, r.NsPerOp(), r.AllocedBytesPerOp(), r.AllocsPerOp(),
				float64(r.NsPerOp())/float64(floorResult.NsPerOp()))
		}
	}
	fmt.Printf("\n%-28s %-12s %s\n", "middleware", "token", "× entragate (how much slower than entragate)")
	for _, row := range rows {
		if row.peer == "entragate" {
			continue
		}
		fmt.Printf("%-28s %-12s %10.1f\n", row.peer, row.kind, float64(row.r.NsPerOp())/reference[row.kind])
	}
	serial := testing.Benchmark(func(b *testing.B) { benchPeer(b, s, s.peers[0], true, false) })
	parallel := testing.Benchmark(func(b *testing.B) { benchPeer(b, s, s.peers[0], true, true) })
	fmt.Printf("\nentragate, repeated token: serial %d ns/op, parallel %d ns/op (%.2f× the throughput)\n",
		serial.NsPerOp(), parallel.NsPerOp(), float64(serial.NsPerOp())/float64(parallel.NsPerOp()))
}

func perOp(r testing.BenchmarkResult) string {
	return fmt.Sprintf("%d ns/op, %d B/op, %d allocs/op", r.NsPerOp(), r.AllocedBytesPerOp(), r.AllocsPerOp())
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "cpu unknown"
	}
	for _, line := range splitLines(string(b)) {
		if len(line) > 10 && line[:10] == "model name" {
			for i := range line {
				if line[i] == ':' {
					return line[i+2:]
				}
			}
		}
	}
	return "cpu unknown"
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range s {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// nopWriter is a ResponseWriter that does nothing, so that the benchmark
// measures the middleware, not a recorder.
type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }
