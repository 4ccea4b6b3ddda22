package claims

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// referenceDecode is the reading of a payload that decodeWire must agree
// with: encoding/json into wireClaims, from the members whose names match
// exactly (encoding/json alone would also take "AUD" for aud).
func referenceDecode(raw []byte) (wireClaims, error) {
	var w wireClaims
	if trimmed := bytes.TrimSpace(raw); len(trimmed) == 0 || trimmed[0] != '{' {
		return w, errors.New("payload is not a JSON object")
	}
	src := raw
	if hasFoldedClaimName(raw) {
		exact, err := exactClaims(raw)
		if err != nil {
			return w, err
		}
		src = exact
	}
	if err := json.Unmarshal(src, &w); err != nil {
		return w, errors.New(describeJSONError(err))
	}
	return w, nil
}

// hasDuplicateNames reports whether the top-level object repeats a member
// name (after unescaping), exactly or under case folding as
// bytes.EqualFold compares names, which decodeWire refuses and
// encoding/json does not.
func hasDuplicateNames(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		name, _ := tok.(string)
		for _, other := range seen {
			if strings.EqualFold(other, name) {
				return true
			}
		}
		seen = append(seen, name)
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return false
}

// The single-pass decoder reads every payload as encoding/json does (with
// exact names), refusing what it refuses, and refuses duplicate names.
func FuzzDecodeAgreesWithEncodingJSON(f *testing.F) {
	for _, seed := range []string{
		`{"aud":"a","exp":1,"scp":"a b","roles":["x",null],"acct":1,"hasgroups":true,"_claim_names":{"groups":"s"}}`,
		`{"AUD":"x","aud":["a","b"],"Scp":"Admin","scp":null,"nonce":null}`,
		`{"tid":"a","TID":"b"}`, `{"sub":"a","ſub":"b"}`, `{"kid":"a","Kid":"b"}`, `{"Custom":1,"cUSTOM":2}`,
		`{"\u0061ud":"a","tid":"\u00e9","oid":"\ud800","x":{"aud":[1,{"a":"}"}]}}`,
		`{"acct":1.5}`, `{"acct":"1"}`, `{"roles":"a"}`, `{"groups":[1]}`, `{"hasgroups":1}`, `{"_claim_names":{"groups":1}}`,
		`{"exp":"1"}`, `{"aud":null}`, `{"scp":"a","scp":"b"}`, `[]`, `{"a":1}x`, ` {} `, `{"name":"` + "\xff\xfe" + `"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got wireClaims
		gotErr := decodeWire(raw, &got)
		if json.Valid(raw) && hasDuplicateNames(raw) {
			if gotErr == nil {
				t.Fatalf("%q: duplicate names accepted", raw)
			}
			return
		}
		want, wantErr := referenceDecode(raw)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: decodeWire error %v, encoding/json error %v", raw, gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		if !reflect.DeepEqual(normalise(got), normalise(want)) {
			t.Fatalf("%q:\ndecodeWire   %+v\nencoding/json %+v", raw, got, want)
		}
	})
}

// normalise makes two readings comparable: what Parse takes from them.
// RawMessage contents and empty versus nil slices do not matter; the
// presence of nonce, at_hash and c_hash does.
func normalise(w wireClaims) string {
	times := []int64{w.Iat.t.Unix(), w.Nbf.t.Unix(), w.Exp.t.Unix(), w.AuthTime.t.Unix()}
	var acct any
	if w.Acct != nil {
		acct = *w.Acct
	}
	_, overage := w.ClaimNames["groups"]
	b, _ := json.Marshal([]any{
		w.Ver, w.Iss, []string(w.Aud), w.Tid, w.Oid, w.Sub, w.Name, w.PreferredUsername, w.Upn, w.UniqueName,
		w.Azp, w.Azpacr, w.Appid, w.Appidacr, w.Scp, w.Roles, w.Groups, w.Wids, w.Idtyp, w.Idp, w.Uti, w.XmsCc, w.Acrs,
		w.HasGroups, acct, w.Tfp, w.Acr, w.Email, w.Sid, w.LoginHint, overage,
		w.Nonce != nil, w.AtHash != nil, w.CHash != nil, nonceValue(w.Nonce), times,
	})
	return strings.ReplaceAll(string(b), "null", "[]")
}

func nonceValue(v json.RawMessage) string {
	var s string
	_ = json.Unmarshal(v, &s)
	return s
}

// describeJSONError names the offending claim without echoing token content.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("claim %q has the wrong JSON type", typeErr.Field)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return "payload is not valid JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// claimNames are the JSON names wireClaims reads.
var claimNames = func() []string {
	t := reflect.TypeFor[wireClaims]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return names
}()

// hasFoldedClaimName reports whether a top-level member name of the JSON
// object b is not exactly one of claimNames but encoding/json would still
// match it to one (a case or Unicode-folding variant), or is written with
// escapes. For invalid JSON the answer does not matter: decoding fails. Entra's names are lower-case ASCII, so the
// usual token costs one pass over its bytes.
func hasFoldedClaimName(b []byte) bool {
	depth := 0
	expectKey := false
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			j, escaped := i+1, false
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					escaped = true
					j++
				}
				j++
			}
			if depth == 1 && expectKey {
				if escaped || foldsToClaimName(b[i+1:j]) {
					return true
				}
				expectKey = false
			}
			i = j
		case '{', '[':
			depth++
			expectKey = depth == 1
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		}
	}
	return false
}

func foldsToClaimName(key []byte) bool {
	plain := true
	for _, c := range key {
		if c >= 'A' && c <= 'Z' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return false // lower-case ASCII matches only itself
	}
	for _, name := range claimNames {
		if bytes.EqualFold(key, []byte(name)) {
			return true
		}
	}
	return false
}

// exactClaims re-encodes the members of b whose names are exactly claim
// names, so that a struct decode cannot pick up folded variants.
func exactClaims(b []byte) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, describeJSONError(err))
	}
	exact := make(map[string]json.RawMessage, len(claimNames))
	for _, name := range claimNames {
		if v, ok := members[name]; ok {
			exact[name] = v
		}
	}
	return json.Marshal(exact)
}
