package auth

import (
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzVerifyJWT: arbitrary bearer values never panic and are never
// accepted (no key can have signed them: the configured secret is random
// per run and unknown to the fuzzer).
func FuzzVerifyJWT(f *testing.F) {
	for _, s := range []string{
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig",
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
		"a.b.c", "..", "eyJ9.e30.", "e30.e30.e30",
	} {
		f.Add(s)
	}
	_, hash, _ := GenerateKey()
	secret, _, _ := GenerateKey()
	h, _ := parseKeyHash(hash)
	now := func() time.Time { return time.Unix(1_900_000_000, 0) }
	v, err := newJWTVerifier(JWT{Issuer: "i", Audience: "a"}, now, nil)
	if err != nil {
		f.Fatal(err)
	}
	v.static = []verificationKey{{alg: AlgHS256, key: []byte(secret)}}
	a := &Authenticator{keys: []apiKey{{hash: h, principal: Principal{Scopes: NewScopeSet(ScopeInfer)}}}, jwt: v}
	f.Fuzz(func(t *testing.T, tok string) {
		for _, c := range []Credential{{Bearer: tok}, {APIKey: tok}} {
			if p, err := a.Check(c, ScopeInfer); err == nil {
				t.Fatalf("accepted %q as %+v", tok, p)
			}
		}
	})
}

// FuzzParseJWKS: any key the parser returns is usable for its algorithm.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY","alg":"HS256"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseJWKS(data)
		if err != nil {
			return
		}
		var set jose.JSONWebKeySet
		if json.Unmarshal(data, &set) != nil {
			t.Fatal("parsed keys from a document encoding/json refuses")
		}
		for _, k := range keys {
			if err := checkKeyForAlg(k.key, k.alg); err != nil {
				t.Fatalf("returned an unusable key: %v", err)
			}
		}
	})
}

// FuzzFromHeader: at most one credential comes out.
func FuzzFromHeader(f *testing.F) {
	f.Add("Bearer abc", "")
	f.Add("", "key")
	f.Add("Basic x", "y")
	f.Fuzz(func(t *testing.T, authz, key string) {
		var az, k []string
		if authz != "" {
			az = []string{authz}
		}
		if key != "" {
			k = []string{key}
		}
		c := FromHeader(az, k)
		if c.Bearer != "" && c.APIKey != "" {
			t.Fatalf("two credentials from %q %q", authz, key)
		}
	})
}
