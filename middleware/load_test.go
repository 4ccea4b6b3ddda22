package middleware_test

import (
	"io"
	"net/http"
	"runtime"
	"testing"

	"github.com/entragate/entragate/middleware/entratest"
)

// TestMemoryStaysBoundedUnderMixedLoad sends a sustained mix of valid and
// invalid tokens over loopback and checks the live heap does not grow with
// the number of requests: nothing per request or per token is retained.
func TestMemoryStaysBoundedUnderMixedLoad(t *testing.T) {
	tenant := entratest.NewTenant(t)
	srv := protectedServer(t, newAuth(t, tenant))
	foreign := tenant.Server().NewKey()
	tokens := []string{
		tenant.AccessToken(),
		tenant.AccessToken(entratest.Expired()),
		tenant.AccessToken(entratest.SignedWith(foreign)),
		"not-a-token",
		tenant.IDToken(),
		tenant.AppToken(entratest.Roles("R")),
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	t.Cleanup(client.CloseIdleConnections)
	round := func(n int) {
		for i := range n {
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	round(600) // warm up pools and connections
	before := heap()
	round(3000)
	after := heap()
	t.Logf("live heap %d KiB before, %d KiB after 3000 more requests", before>>10, after>>10)
	if after > before+4<<20 {
		t.Errorf("live heap grew by %d KiB over 3000 requests", (after-before)>>10)
	}
}
