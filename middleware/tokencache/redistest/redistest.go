// Package redistest starts a real redis-server (Debian's redis-server
// package) on loopback for tests: on a free port, in a temporary
// directory, without persistence, stopped when the test ends.
package redistest

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Server is a running redis-server.
type Server struct {
	// Addr is host:port; URL is redis://Addr/0.
	Addr, URL string
	bin, dir  string
	port      int
	cmd       *exec.Cmd
}

// Start starts a redis-server for t. Without one installed it skips the
// test, saying how to get one, unless ENTRAGATE_E2E_REQUIRED is set (as
// in CI), which makes that a failure.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("REDIS_SERVER")
	if bin == "" {
		bin, _ = exec.LookPath("redis-server")
	}
	if bin == "" {
		msg := "redis-server not found (install Debian's redis-server package, or set REDIS_SERVER)"
		if os.Getenv("ENTRAGATE_E2E_REQUIRED") != "" {
			t.Fatal(msg + ", and ENTRAGATE_E2E_REQUIRED is set")
		}
		t.Skip(msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{bin: bin, dir: t.TempDir(), port: port, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	s.URL = "redis://" + s.Addr + "/0"
	s.Restart(t)
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server (for a test of Redis going away); Restart starts
// it again on the same port, empty.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause freezes the server (SIGSTOP) with its data: connections open and
// nothing answers, as with a hung Redis. Resume lets it go on.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if s.cmd == nil || s.cmd.Process.Signal(syscall.SIGSTOP) != nil {
		t.Fatal("redistest: cannot pause a server that is not running")
	}
	t.Cleanup(func() { s.Resume(t) })
}

// Resume ends a Pause.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Restart starts the server if it is stopped.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		return
	}
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes")
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("redis-server did not listen on %s", s.Addr)
}
