package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/entragate/entragate/middleware/entratest"
)

func startOfflineSample(t *testing.T) *stack {
	t.Helper()
	for _, v := range variables {
		t.Setenv(v, "")
	}
	s, err := start(context.Background(), slog.New(slog.DiscardHandler), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

type answer struct {
	status     int
	retryAfter string
	body       map[string]any
}

func curl(t *testing.T, url, authorization string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	_ = json.NewDecoder(resp.Body).Decode(&a.body)
	return a
}

// The printed commands answer as they say, through the real MSAL client
// credentials and Graph paging of the fake tenant: Graph is asked once
// for Ada, whatever the number of her requests, and never for Alan.
func TestOfflineCommands(t *testing.T) {
	s := startOfflineSample(t)
	var out bytes.Buffer
	s.offline.printHelp(&out, s.URL)
	line := regexp.MustCompile(`^curl -i -H "Authorization: (Bearer [^"]+)" (\S+)$`)
	var got []int
	var last answer
	for _, l := range strings.Split(out.String(), "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			last = curl(t, m[2], m[1])
			got = append(got, last.status)
		}
	}
	want := []int{200, 403, 200, 200}
	if len(got) != len(want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("commands answered %v, want %v", got, want)
			break
		}
	}
	if last.body["overage"] != true || last.body["reports_group"] != true {
		t.Errorf("Ada's /me/groups: %v", last.body)
	}
	if n := s.offline.srv.Requests(entratest.GraphGroups); n != 2 { // Ada once (then cached), Grace once
		t.Errorf("%d Graph membership requests, want 2", n)
	}
}

// Graph down: a user in overage gets 503 with Retry-After, never 403 or
// 200; users whose token lists their groups are not affected.
func TestGraphOutage(t *testing.T) {
	s := startOfflineSample(t)
	o := s.offline
	o.srv.SetFault(entratest.GraphGroups, entratest.Unavailable)
	token := func(u entratest.User) string {
		return "Bearer " + o.tenant.AccessToken(entratest.ForUser(u), entratest.Scopes("SecureData.Read"))
	}
	if a := curl(t, s.URL+"/reports", token(o.ada)); a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
		t.Errorf("overage user while Graph is down: %d, Retry-After %q", a.status, a.retryAfter)
	}
	if a := curl(t, s.URL+"/reports", token(o.alan)); a.status != http.StatusOK {
		t.Errorf("a user whose token lists the group, while Graph is down: %d", a.status)
	}
	if a := curl(t, s.URL+"/me/groups", token(o.grace)); a.status != http.StatusServiceUnavailable {
		t.Errorf("/me/groups of an overage user while Graph is down: %d", a.status)
	}
}
