package main

import (
	"net/http"
	"sync/atomic"
	"testing"
)

// benchPeer serves requests through p: the same token every time
// (repeated), or the next of the pool (first seen: entragate's cache is
// half the pool, so it always misses).
func benchPeer(b *testing.B, s *setup, p peer, repeated, parallel bool) {
	headers := make([]http.Header, len(s.tokens))
	for i, tok := range s.tokens {
		headers[i] = http.Header{"Authorization": {"Bearer " + tok}}
	}
	var next atomic.Int64
	header := func() http.Header {
		if repeated {
			return headers[0]
		}
		return headers[int(next.Add(1))%len(headers)]
	}
	b.ReportAllocs()
	if !parallel {
		req, _ := http.NewRequest(http.MethodGet, "/secure-data", nil)
		w := &nopWriter{h: http.Header{}}
		for b.Loop() {
			req.Header = header()
			p.handler.ServeHTTP(w, req)
			if w.code != 0 {
				b.Fatalf("%s: status %d", p.name, w.code)
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, "/secure-data", nil)
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			req.Header = header()
			p.handler.ServeHTTP(w, req)
			if w.code != 0 {
				b.Errorf("%s: status %d", p.name, w.code)
				return
			}
		}
	})
}

// benchFloor cycles through the pool, as first-seen requests do, so that
// neither reads a token its CPU caches already hold.
func benchFloor(b *testing.B, s *setup) {
	pub := s.tenant.Server().SigningKey().PublicKey()
	b.ReportAllocs()
	var i int
	for b.Loop() {
		i++
		if err := floor(pub, s.tokens[i%len(s.tokens)]); err != nil {
			b.Fatal(err)
		}
	}
}
