package middleware

import (
	"encoding/json"
	"math/rand"
	"testing"
)

// The header scanner reads what encoding/json reads: over random small
// objects with escapes, duplicates and nesting, it accepts only what
// encoding/json accepts, and finds the same alg, kid, crit and nonce.
func TestHeaderScannerAgreesWithEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	atoms := []string{`"alg"`, `"kid"`, `"\u0061lg"`, `"k\u0069d"`, `"crit"`, `"nonce"`, `"x"`, `"RS256"`, `"a\"b"`, `"\\"`, `"\ud800"`,
		`1`, `-1.5e3`, `true`, `null`, `[]`, `{}`, `["}",{"a":"]"}]`, `{"alg":"none"}`, `" "`, `"é"`}
	for range 50000 {
		s := "{"
		for i := range r.Intn(4) {
			if i > 0 {
				s += ","
			}
			s += []string{" ", "", "\t"}[r.Intn(3)] + atoms[r.Intn(7)] + []string{":", " : "}[r.Intn(2)] + atoms[r.Intn(len(atoms))]
		}
		s += "}"
		h, err := decodeHeader([]byte(s))
		var m map[string]any
		if jerr := json.Unmarshal([]byte(s), &m); jerr != nil {
			if err == nil {
				t.Fatalf("%s: the scanner accepted what encoding/json refuses: %v", s, jerr)
			}
			continue
		}
		if err != nil {
			continue // duplicates, non-string alg or kid: refused on purpose
		}
		alg, _ := m["alg"].(string)
		kid, _ := m["kid"].(string)
		_, crit := m["crit"]
		_, nonce := m["nonce"]
		if h.alg != alg || h.kid != kid || h.crit != crit || h.nonce != nonce {
			t.Fatalf("%s: scanner %+v, encoding/json alg=%q kid=%q crit=%v nonce=%v", s, h, alg, kid, crit, nonce)
		}
	}
}
