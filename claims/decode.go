package claims

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// decodeWire reads a token payload into w in one pass over its members,
// the claims Parse knows by their exact names, the others skipped. Values
// are read with encoding/json's rules for w's field types (a string, or
// null for no value; arrays of strings; integers; booleans), which a test
// checks against encoding/json itself; names, unlike encoding/json's, are
// matched exactly: "AUD" or "Scp" are other claims, as for every other JWT
// parser.
//
// A payload that names a claim twice, or two claims whose names differ
// only in case, is refused: RFC 7519 §4 requires claim names to be unique,
// and two parsers that keep different duplicates would read one token two
// ways.
func decodeWire(b []byte, w *wireClaims) error {
	var names nameSet
	return walkObject(b, false, func(name, value []byte) error {
		if !names.add(name) {
			return &ParseError{Name: string(name), Problem: "appears twice (claim names must differ in more than case)"}
		}
		return w.set(name, value)
	})
}

// walkObject calls member for each member of the JSON object b, in order,
// with the member's name (escapes decoded) and its value's JSON text. It
// is the one scanner of token JSON: b is checked with json.Valid first, so
// the scan itself can be simple. header says which part of a token b is,
// for errors.
func walkObject(b []byte, header bool, member func(name, value []byte) error) error {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return &ParseError{Header: header, Problem: "not a JSON object"}
	}
	if !json.Valid(b) {
		return &ParseError{Header: header, Problem: "not valid JSON"}
	}
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		end := skipValue(b, i)
		name, err := memberName(b[i:end])
		if err != nil {
			return &ParseError{Header: header, Problem: "a member name is not a valid string"}
		}
		i = skipSpace(b, skipSpace(b, end)+1) // past the colon
		end = skipValue(b, i)
		if err := member(name, b[i:end]); err != nil {
			if pe, ok := err.(*ParseError); ok {
				pe.Header = header
			}
			return err
		}
		i = skipSpace(b, end)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return nil
}

// set stores the value v (a JSON value) of claim name, if w has a field
// for it.
func (w *wireClaims) set(name, v []byte) error {
	var err error
	if field := w.stringClaim(name); field != nil {
		err = setString(field, v)
	} else if field := w.listClaim(name); field != nil {
		err = setStrings(field, v)
	} else {
		var handled bool
		if handled, err = w.setOther(name, v); !handled {
			return nil
		}
	}
	if err == nil {
		return nil
	}
	return claimError(name, err)
}

// claimError is the *ParseError for claim name's err. Apart from set, so
// that the error's target does not make every claim cost an allocation.
func claimError(name []byte, err error) error {
	var pe *ParseError
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, errWrongType):
		return &ParseError{Name: string(name), Problem: "has the wrong JSON type"}
	}
	return &ParseError{Name: string(name), Problem: err.Error()}
}

// stringClaim is w's field for a claim whose value is a string.
func (w *wireClaims) stringClaim(name []byte) *string {
	switch string(name) {
	case "ver":
		return &w.Ver
	case "iss":
		return &w.Iss
	case "tid":
		return &w.Tid
	case "oid":
		return &w.Oid
	case "sub":
		return &w.Sub
	case "name":
		return &w.Name
	case "preferred_username":
		return &w.PreferredUsername
	case "upn":
		return &w.Upn
	case "unique_name":
		return &w.UniqueName
	case "azp":
		return &w.Azp
	case "azpacr":
		return &w.Azpacr
	case "appid":
		return &w.Appid
	case "appidacr":
		return &w.Appidacr
	case "scp":
		return &w.Scp
	case "idtyp":
		return &w.Idtyp
	case "idp":
		return &w.Idp
	case "uti":
		return &w.Uti
	case "tfp":
		return &w.Tfp
	case "acr":
		return &w.Acr
	case "email":
		return &w.Email
	case "sid":
		return &w.Sid
	case "login_hint":
		return &w.LoginHint
	}
	return nil
}

// listClaim is w's field for a claim whose value is an array of strings.
func (w *wireClaims) listClaim(name []byte) *[]string {
	switch string(name) {
	case "roles":
		return &w.Roles
	case "groups":
		return &w.Groups
	case "wids":
		return &w.Wids
	case "xms_cc":
		return &w.XmsCc
	case "acrs":
		return &w.Acrs
	}
	return nil
}

// setOther reads the claims of other shapes; handled is false for a claim
// w has no field for.
func (w *wireClaims) setOther(name, v []byte) (handled bool, err error) {
	switch string(name) {
	case "aud":
		return true, w.Aud.UnmarshalJSON(v)
	case "hasgroups":
		return true, setBool(&w.HasGroups, v)
	case "acct":
		return true, setInt(&w.Acct, v)
	case "_claim_names":
		return true, setClaimNames(w, v)
	// The presence of these marks an ID token, whatever their value.
	case "nonce":
		w.Nonce = v
	case "at_hash":
		w.AtHash = v
	case "c_hash":
		w.CHash = v
	case "iat":
		return true, w.Iat.UnmarshalJSON(v)
	case "nbf":
		return true, w.Nbf.UnmarshalJSON(v)
	case "exp":
		return true, w.Exp.UnmarshalJSON(v)
	case "auth_time":
		return true, w.AuthTime.UnmarshalJSON(v)
	default:
		return false, nil
	}
	return true, nil
}

// setBool reads true or false; null leaves the field alone.
func setBool(dst *bool, v []byte) error {
	switch string(v) {
	case "true", "false":
		*dst = string(v) == "true"
	case "null":
	default:
		return errWrongType
	}
	return nil
}

var errWrongType = errors.New("wrong JSON type")

// setString reads a JSON string; null leaves the field alone.
func setString(dst *string, v []byte) error {
	switch v[0] {
	case '"':
		s, err := jsonString(v)
		*dst = s
		return err
	case 'n':
		return nil
	}
	return errWrongType
}

// setStrings reads an array of strings (a null element is ""); null is
// no array.
func setStrings(dst *[]string, v []byte) error {
	switch v[0] {
	case 'n':
		*dst = nil
		return nil
	case '[':
	default:
		return errWrongType
	}
	out := []string{}
	i := skipSpace(v, 1)
	for v[i] != ']' {
		end := skipValue(v, i)
		var s string
		if err := setString(&s, v[i:end]); err != nil {
			return err
		}
		out = append(out, s)
		i = skipSpace(v, end)
		if v[i] == ',' {
			i = skipSpace(v, i+1)
		}
	}
	*dst = out
	return nil
}

// setInt reads an integer that fits an int; null is no value.
func setInt(dst **int, v []byte) error {
	if string(v) == "null" {
		*dst = nil
		return nil
	}
	n, err := strconv.ParseInt(string(v), 10, strconv.IntSize)
	if err != nil {
		return errWrongType
	}
	i := int(n)
	*dst = &i
	return nil
}

// setClaimNames notes whether _claim_names names a source for groups (the
// group overage of v1 tokens). It must be an object of strings.
func setClaimNames(w *wireClaims, v []byte) error {
	switch v[0] {
	case 'n':
		w.ClaimNames = nil
		return nil
	case '{':
	default:
		return errWrongType
	}
	names := map[string]string{}
	err := walkObject(v, false, func(key, value []byte) error {
		var s string
		if err := setString(&s, value); err != nil {
			return err
		}
		names[string(key)] = s
		return nil
	})
	if err != nil {
		return errWrongType
	}
	w.ClaimNames = names
	return nil
}

// memberName returns a member name's text: the literal's own bytes when it
// holds no escape and is valid UTF-8 (no copy), else encoding/json's
// decoding of it, so that "\u0061ud" names aud, as for any JSON parser.
func memberName(lit []byte) ([]byte, error) {
	inner := lit[1 : len(lit)-1]
	plain := true
	for _, c := range inner {
		if c == '\\' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return inner, nil
	}
	s, err := jsonString(lit)
	return []byte(s), err
}

// jsonString decodes a JSON string literal as encoding/json does: plain
// ones directly, the others (escapes, invalid UTF-8) by encoding/json.
func jsonString(lit []byte) (string, error) {
	if s, ok := plainString(lit); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return "", errWrongType
	}
	return s, nil
}

// nameSet remembers the member names seen, without allocating for the
// usual token, and refuses a name that repeats one seen, exactly or under
// case folding: encoding/json matches names case-insensitively (as
// bytes.EqualFold does), so a handler decoding Claims.Raw() into its own
// struct would read either of "tid" and "TID", and Microsoft.IdentityModel
// refuses a token with two tenant IDs (IDX40011).
type nameSet struct {
	small [48][]byte
	n     int
	more  map[string]bool // folded names beyond small
}

func (s *nameSet) add(name []byte) bool {
	for _, seen := range s.small[:s.n] {
		if sameFolded(seen, name) {
			return false
		}
	}
	if s.n < len(s.small) {
		s.small[s.n] = name
		s.n++
		return true
	}
	folded := foldName(name)
	if s.more[folded] {
		return false
	}
	if s.more == nil {
		s.more = map[string]bool{}
	}
	s.more[folded] = true
	return true
}

// sameFolded reports whether a and b are equal under Unicode simple case
// folding, as bytes.EqualFold compares them; ASCII names of different
// lengths, the usual case, are told apart without folding.
func sameFolded(a, b []byte) bool {
	if len(a) != len(b) && isASCII(a) && isASCII(b) {
		return false
	}
	return bytes.EqualFold(a, b)
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldName maps a name to one representative of its case-folding class:
// each rune becomes the smallest rune of its simple-folding orbit, so two
// names fold to the same string exactly when bytes.EqualFold says they
// are equal.
func foldName(name []byte) string {
	var b strings.Builder
	for _, r := range string(name) {
		smallest := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			smallest = min(smallest, f)
		}
		b.WriteRune(smallest)
	}
	return b.String()
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at b[i].
// b must be valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(b)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipValue(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}
