package claims

// Header is what a verifier reads from a JWT's JOSE header (RFC 7515
// §4.1). Members that locate keys (jku, x5u, jwk, x5c) are not read: keys
// must come from the issuer's published key set, never from the token
// (RFC 8725 §3.10).
type Header struct {
	// Algorithm is alg, KeyID is kid.
	Algorithm, KeyID string
	// Critical is true when the header lists crit: extensions the
	// verifier must understand or refuse the token (RFC 7515 §4.1.11).
	Critical bool
	// Nonce is true when the header carries a nonce, as Microsoft Graph's
	// access tokens do: their signature covers a hash of it, not the
	// header as sent, so no one but Graph can verify them.
	Nonce bool
}

// maxHeaderMembers bounds the members read: Entra's headers have four.
const maxHeaderMembers = 32

// ParseHeader decodes a JOSE header (the JSON of a JWT's first segment)
// with the same scanner and rules as Parse: a JSON object whose member
// names are unique, also under case folding (encoding/json would read
// "kid" and "KID" as one), alg and kid strings when present, at most 32
// members. Every error is a *ParseError with Header set.
func ParseHeader(raw []byte) (Header, error) {
	var h Header
	var names nameSet
	count := 0
	err := walkObject(raw, true, func(name, value []byte) error {
		if count++; count > maxHeaderMembers {
			return &ParseError{Problem: "has too many members"}
		}
		if !names.add(name) {
			return &ParseError{Name: string(name), Problem: "appears twice (member names must differ in more than case)"}
		}
		switch string(name) {
		case "alg", "kid":
			if value[0] != '"' {
				return &ParseError{Name: string(name), Problem: "must be a string"}
			}
			s := "RS256" // the usual alg, without a copy
			if string(name) != "alg" || string(value) != `"RS256"` {
				var err error
				if s, err = jsonString(value); err != nil {
					return &ParseError{Name: string(name), Problem: "must be a string"}
				}
			}
			if string(name) == "alg" {
				h.Algorithm = s
			} else {
				h.KeyID = s
			}
		case "crit":
			h.Critical = true
		case "nonce":
			h.Nonce = true
		}
		return nil
	})
	if err != nil {
		return Header{}, err
	}
	return h, nil
}
