package claims_test

import (
	"encoding/json"
	"errors"
	"math/rand"
	"strings"
	"testing"

	"github.com/entragate/entragate/claims"
)

// ParseHeader reads what encoding/json reads: over random small objects
// with escapes, duplicates and nesting, it accepts only what encoding/json
// accepts, and finds the same alg, kid, crit and nonce. It refuses, on
// purpose, duplicate names (also under case folding) and an alg or kid
// that is not a string.
func TestParseHeaderAgreesWithEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	atoms := []string{`"alg"`, `"kid"`, `"\u0061lg"`, `"k\u0069d"`, `"crit"`, `"nonce"`, `"x"`, `"KID"`, `"RS256"`, `"a\"b"`, `"\\"`, `"\ud800"`,
		`1`, `-1.5e3`, `true`, `null`, `[]`, `{}`, `["}",{"a":"]"}]`, `{"alg":"none"}`, `" "`, `"é"`}
	refusedOnPurpose := 0
	for range 50000 {
		s := "{"
		for i := range r.Intn(4) {
			if i > 0 {
				s += ","
			}
			s += []string{" ", "", "\t"}[r.Intn(3)] + atoms[r.Intn(8)] + []string{":", " : "}[r.Intn(2)] + atoms[r.Intn(len(atoms))]
		}
		s += "}"
		h, err := claims.ParseHeader([]byte(s))
		if err != nil && !errors.Is(err, claims.ErrMalformed) {
			t.Fatalf("%s: error %v does not wrap ErrMalformed", s, err)
		}
		var m map[string]any
		if jerr := json.Unmarshal([]byte(s), &m); jerr != nil {
			if err == nil {
				t.Fatalf("%s: ParseHeader accepted what encoding/json refuses: %v", s, jerr)
			}
			continue
		}
		if err != nil {
			var pe *claims.ParseError
			if !errors.As(err, &pe) || !pe.Header || !strings.Contains(pe.Problem, "twice") && !strings.Contains(pe.Problem, "must be a string") {
				t.Fatalf("%s: refused for %v, which encoding/json accepts", s, err)
			}
			refusedOnPurpose++
			continue
		}
		alg, _ := m["alg"].(string)
		kid, _ := m["kid"].(string)
		_, crit := m["crit"]
		_, nonce := m["nonce"]
		if h.Algorithm != alg || h.KeyID != kid || h.Critical != crit || h.Nonce != nonce {
			t.Fatalf("%s: ParseHeader %+v, encoding/json alg=%q kid=%q crit=%v nonce=%v", s, h, alg, kid, crit, nonce)
		}
	}
	if refusedOnPurpose == 0 {
		t.Error("no generated header had duplicates or a non-string alg: the test proves nothing about them")
	}
}

func TestParseHeaderRefusals(t *testing.T) {
	var many strings.Builder
	many.WriteString(`{"alg":"RS256"`)
	for i := range 40 {
		many.WriteString(`,"m` + strings.Repeat("x", i) + `":1`)
	}
	many.WriteString(`}`)
	tests := []struct {
		header, name, problem string
	}{
		{`{"alg":"RS256","alg":"none"}`, "alg", "appears twice"},
		{`{"kid":"a","KID":"b"}`, "KID", "appears twice"},
		{`{"kid":"a","\u212aid":"b"}`, "\u212aid", "appears twice"},
		{`{"alg":256}`, "alg", "must be a string"},
		{`{"kid":["a"]}`, "kid", "must be a string"},
		{`["RS256"]`, "", "not a JSON object"},
		{`{"alg":"RS256"}{}`, "", "not valid JSON"},
		{many.String(), "", "too many members"},
	}
	for _, tc := range tests {
		_, err := claims.ParseHeader([]byte(tc.header))
		var pe *claims.ParseError
		if !errors.As(err, &pe) || !pe.Header || pe.Name != tc.name || !strings.Contains(pe.Problem, tc.problem) {
			t.Errorf("%.60s: %v, want a header ParseError for %q: %s", tc.header, err, tc.name, tc.problem)
		}
	}
}
