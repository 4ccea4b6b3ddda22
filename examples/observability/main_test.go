package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// documented are the series the README's table documents, with the labels
// each must carry (beyond OpenTelemetry's otel_scope_* labels).
var documented = map[string][]string{
	"entragate_token_decisions_total":              {"entragate_outcome", "entragate_reason", "entragate_authority", "entragate_cached", "entragate_token_type"},
	"entragate_token_decision_duration_seconds":    {"entragate_outcome", "entragate_cached"},
	"entragate_key_document_loads_total":           {"entragate_authority", "entragate_document", "entragate_result"},
	"entragate_key_document_load_duration_seconds": {"entragate_authority", "entragate_document", "entragate_result"},
	"entragate_key_document_last_success_seconds":  {"entragate_authority", "entragate_document"},
	"entragate_key_document_keys":                  {"entragate_authority", "entragate_document"},
	"entragate_token_cache_entries":                {"entragate_api"},
	"entragate_token_cache_hits_total":             {"entragate_api"},
	"entragate_token_cache_misses_total":           {"entragate_api"},
	"entragate_token_cache_evictions_total":        {"entragate_api"},
	"entragate_admission_calls_total":              {"entragate_authority", "entragate_result"},
	"entragate_admission_duration_seconds":         {"entragate_authority", "entragate_result"},
	"http_server_request_duration_seconds":         {"entragate_outcome", "entragate_reason"},
}

// offlineService starts the example as `go run .` does with no
// configuration, with a multi-tenant authority beside the fake tenant so
// that admission calls are made too.
func offlineService(t *testing.T) (*httptest.Server, *entratest.Tenant, *entratest.Tenant) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AZURE_") || name == "ADDR" {
			t.Setenv(name, "")
		}
	}
	setup, err := demo.FromEnv(&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(setup.Close)
	// A second tenant of the fake server, admitted by a Check, through a
	// multi-tenant authority: admission calls to measure.
	srv := setup.Tenant.Server()
	partner := srv.NewTenant(entratest.WithClientID(setup.Tenant.ClientID))
	cfg := setup.Config
	cfg.Authorities = append(cfg.Authorities, middleware.EntraMultiTenant(middleware.Common, middleware.TenantAdmission{
		Check: func(_ context.Context, tid string) (bool, error) {
			if tid == partner.ID {
				return true, nil
			}
			return false, errors.New("unknown customer")
		},
	}).WithHost(srv.URL))
	svc, err := newService(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	api := httptest.NewServer(svc.Handler)
	t.Cleanup(api.Close)
	return api, setup.Tenant, partner
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Prometheus's own parser of its text format.
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

// traffic sends what produces every kind of decision.
func traffic(t *testing.T, api *httptest.Server, tenant, partner *entratest.Tenant) {
	t.Helper()
	good := tenant.AccessToken(entratest.Scopes(demo.ReadScope))
	for _, tok := range []string{
		good, good, good,
		tenant.AppToken(entratest.Roles(demo.ReadRole)),
		tenant.AccessToken(entratest.Scopes("Profile.Read")),  // forbidden
		tenant.AccessToken(entratest.Expired()),               // refused
		partner.AccessToken(entratest.Scopes(demo.ReadScope)), // admitted by the Check
		partner.AccessToken(entratest.Scopes(demo.ReadScope), entratest.Claim("tid", entratest.NewGUID()), entratest.Issuer("")),
		"",
	} {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/secure-data", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

// After real traffic, /metrics parses, and carries every documented series
// with its labels, and no label value names a user or a token.
func TestMetricsAfterTraffic(t *testing.T) {
	api, tenant, partner := offlineService(t)
	traffic(t, api, tenant, partner)
	families := scrape(t, api.URL)
	for name, labels := range documented {
		f, ok := families[name]
		if !ok {
			t.Errorf("/metrics lacks %s", name)
			continue
		}
		for _, want := range labels {
			if !slices.ContainsFunc(f.Metric, func(m *dto.Metric) bool { return hasLabel(m, want) }) {
				t.Errorf("%s has no series labelled %s", name, want)
			}
		}
	}
	outcomes := map[string]bool{}
	for _, m := range families["entragate_token_decisions_total"].GetMetric() {
		outcomes[label(m, "entragate_outcome")+"/"+label(m, "entragate_reason")] = true
	}
	for _, want := range []string{"accepted/", "refused/insufficient_scope", "refused/token_expired", "refused/missing_token"} {
		if !outcomes[want] {
			t.Errorf("no decisions %s: %v", want, outcomes)
		}
	}
	for name, f := range families {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				v := l.GetValue()
				if strings.Contains(v, "eyJ") || strings.Contains(v, tenant.User.ObjectID) || strings.Contains(v, tenant.User.Name) || strings.Contains(v, partner.ID) {
					t.Errorf("%s{%s=%q} names a token, a user or a tenant", name, l.GetName(), v)
				}
			}
		}
	}
}

func hasLabel(m *dto.Metric, name string) bool {
	return slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == name })
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Every query of the dashboard parses as PromQL and names only series the
// exporter emits, with labels those series carry.
func TestDashboardQueriesNameEmittedSeries(t *testing.T) {
	api, tenant, partner := offlineService(t)
	traffic(t, api, tenant, partner)
	families := scrape(t, api.URL)
	emitted := map[string][]string{} // series name -> labels
	for name, f := range families {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			if suffix != "" && f.GetType() != dto.MetricType_HISTOGRAM {
				continue
			}
			for _, m := range f.Metric {
				for _, l := range m.Label {
					emitted[name+suffix] = append(emitted[name+suffix], l.GetName())
				}
			}
			emitted[name+suffix] = append(emitted[name+suffix], "le")
		}
	}
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	queries := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			queries++
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(target.Expr)
			if err != nil {
				t.Errorf("%s: %q does not parse: %v", p.Title, target.Expr, err)
				continue
			}
			for _, sel := range parser.ExtractSelectors(expr) {
				for _, m := range sel {
					if m.Name == model.MetricNameLabel {
						if _, ok := emitted[m.Value]; !ok {
							t.Errorf("%s: %q names %s, which /metrics does not carry", p.Title, target.Expr, m.Value)
						}
					}
				}
			}
			for _, name := range groupingLabels(target.Expr) {
				if !anyEmits(emitted, name) {
					t.Errorf("%s: %q groups by %s, a label no series carries", p.Title, target.Expr, name)
				}
			}
		}
	}
	if queries < 10 {
		t.Errorf("only %d queries in the dashboard", queries)
	}
}

var groupBy = regexp.MustCompile(`by \(([^)]*)\)`)

func groupingLabels(expr string) []string {
	var out []string
	for _, m := range groupBy.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func anyEmits(emitted map[string][]string, label string) bool {
	for _, labels := range emitted {
		if slices.Contains(labels, label) {
			return true
		}
	}
	return false
}

var ruleExpr = regexp.MustCompile(`(?m)^\s*expr:\s*(.+)$`)

// The alerting rules parse as PromQL and name emitted series; the README
// shows the same rules.
func TestAlertRulesNameEmittedSeries(t *testing.T) {
	api, tenant, partner := offlineService(t)
	traffic(t, api, tenant, partner)
	families := scrape(t, api.URL)
	rules, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, m := range ruleExpr.FindAllStringSubmatch(string(rules), -1) {
		exprs = append(exprs, strings.TrimSpace(m[1]))
	}
	if len(exprs) < 7 {
		t.Fatalf("%d rules in alerts.yml", len(exprs))
	}
	for _, expr := range exprs {
		if !strings.Contains(string(readme), expr) {
			t.Errorf("the README does not show the rule %q", expr)
		}
		parsed, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
		if err != nil {
			t.Errorf("%q does not parse: %v", expr, err)
			continue
		}
		for _, sel := range parser.ExtractSelectors(parsed) {
			for _, m := range sel {
				if m.Name != model.MetricNameLabel {
					continue
				}
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m.Value, "_bucket"), "_sum"), "_count")
				if _, ok := families[base]; !ok {
					t.Errorf("%q names %s, which /metrics does not carry", expr, m.Value)
				}
			}
		}
	}
}
