package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"imload/server/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var secret = []byte("0123456789abcdef0123456789abcdef")

// claims are a token's payload in the tests.
type claims struct {
	jwt.RegisteredClaims
	Name  string    `json:"name,omitempty"`
	Color string    `json:"color,omitempty"`
	Rooms *[]string `json:"rooms,omitempty"`
}

func valid(sub string) claims {
	return claims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c claims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t *testing.T, cfg auth.Config) *auth.Verifier {
	t.Helper()
	v, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// verify waits for the verifier's answer.
func verify(t *testing.T, v *auth.Verifier, token string) (auth.Claims, error) {
	t.Helper()
	type answer struct {
		c   auth.Claims
		err error
	}
	ch := make(chan answer, 1)
	v.Verify(token, func(c auth.Claims, err error) { ch <- answer{c, err} })
	select {
	case a := <-ch:
		return a.c, a.err
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
		panic("unreachable")
	}
}

func mustFail(t *testing.T, what string, v *auth.Verifier, token string, want error) {
	t.Helper()
	if _, err := verify(t, v, token); !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

func TestHS256(t *testing.T) {
	v := newVerifier(t, auth.Config{HMACSecret: secret})
	c := valid("alice")
	c.Name, c.Color = "Alice A.", "#12ab9F"
	c.Rooms = &[]string{"lobby", "team-*"}
	got, err := verify(t, v, sign(t, jwt.SigningMethodHS256, secret, c, ""))
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "alice" || got.Name != "Alice A." || got.Color != "#12ab9F" || got.AllRooms || !got.Expires.Equal(c.ExpiresAt.Time) {
		t.Fatalf("claims %+v", got)
	}
	for room, ok := range map[string]bool{"lobby": true, "lobby2": false, "team-a": true, "team-": true, "team": false} {
		if got.MayJoin(room) != ok {
			t.Fatalf("MayJoin(%q) = %v", room, !ok)
		}
	}
	if all, _ := verify(t, v, sign(t, jwt.SigningMethodHS384, secret, valid("bob"), "")); !all.AllRooms || !all.MayJoin("anything") {
		t.Fatalf("without rooms: %+v, want every room", all)
	}
	none := valid("carol")
	none.Rooms = &[]string{}
	if c, _ := verify(t, v, sign(t, jwt.SigningMethodHS256, secret, none, "")); c.MayJoin("lobby") {
		t.Fatal("rooms [] allows a room")
	}
}

func TestRefused(t *testing.T) {
	v := newVerifier(t, auth.Config{HMACSecret: secret, Audience: "chat", Issuer: "https://id.example"})
	ok := valid("alice")
	ok.Audience, ok.Issuer = jwt.ClaimStrings{"other", "chat"}, "https://id.example"
	if _, err := verify(t, v, sign(t, jwt.SigningMethodHS256, secret, ok, "")); err != nil {
		t.Fatalf("aud and iss right: %v", err)
	}
	with := func(f func(*claims)) string {
		c := ok
		f(&c)
		return sign(t, jwt.SigningMethodHS256, secret, c, "")
	}
	mustFail(t, "expired", v, with(func(c *claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Second)) }), auth.ErrExpired)
	mustFail(t, "no exp", v, with(func(c *claims) { c.ExpiresAt = nil }), auth.ErrInvalid)
	mustFail(t, "not yet valid", v, with(func(c *claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) }), auth.ErrInvalid)
	mustFail(t, "wrong aud", v, with(func(c *claims) { c.Audience = jwt.ClaimStrings{"other"} }), auth.ErrInvalid)
	mustFail(t, "no aud", v, with(func(c *claims) { c.Audience = nil }), auth.ErrInvalid)
	mustFail(t, "wrong iss", v, with(func(c *claims) { c.Issuer = "https://evil.example" }), auth.ErrInvalid)
	mustFail(t, "no sub", v, with(func(c *claims) { c.Subject = "" }), auth.ErrInvalid)
	mustFail(t, "sub not a name", v, with(func(c *claims) { c.Subject = "аlice" }), auth.ErrInvalid) // Cyrillic а
	mustFail(t, "bad colour", v, with(func(c *claims) { c.Color = "red" }), auth.ErrInvalid)
	mustFail(t, "bad display name", v, with(func(c *claims) { c.Name = "a\nb" }), auth.ErrInvalid)
	mustFail(t, "bad room pattern", v, with(func(c *claims) { c.Rooms = &[]string{"a b"} }), auth.ErrInvalid)
	other := []byte("another secret of thirty-two bytes!!")
	mustFail(t, "wrong signature", v, sign(t, jwt.SigningMethodHS256, other, ok, ""), auth.ErrInvalid)
	mustFail(t, "garbage", v, "not.a.token", auth.ErrInvalid)
	mustFail(t, "alg none", v, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ok, ""), auth.ErrInvalid)
	// A token whose signature was cut off, alg left as is.
	tok := sign(t, jwt.SigningMethodHS256, secret, ok, "")
	mustFail(t, "no signature", v, tok[:strings.LastIndexByte(tok, '.')+1], auth.ErrInvalid)
	if _, err := auth.New(auth.Config{HMACSecret: []byte("short")}); err == nil {
		t.Fatal("a 5-byte secret accepted")
	}
	if _, err := auth.New(auth.Config{}); err == nil {
		t.Fatal("no key accepted")
	}
}

func pemOf(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestPublicKeys(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys, err := auth.ParsePublicKeys(append(pemOf(t, &rk.PublicKey), pemOf(t, &ek.PublicKey)...))
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParsePublicKeys: %d keys, %v", len(keys), err)
	}
	v := newVerifier(t, auth.Config{PublicKeys: keys})
	for _, c := range []struct {
		m   jwt.SigningMethod
		key any
	}{{jwt.SigningMethodRS256, rk}, {jwt.SigningMethodPS256, rk}, {jwt.SigningMethodES256, ek}} {
		if got, err := verify(t, v, sign(t, c.m, c.key, valid("alice"), "")); err != nil || got.Subject != "alice" {
			t.Fatalf("%s: %+v %v", c.m.Alg(), got, err)
		}
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	mustFail(t, "RS256 by another key", v, sign(t, jwt.SigningMethodRS256, other, valid("alice"), ""), auth.ErrInvalid)
	mustFail(t, "HS256 without a secret", v, sign(t, jwt.SigningMethodHS256, secret, valid("alice"), ""), auth.ErrInvalid)
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)})
	if _, err := auth.ParsePublicKeys(priv); err == nil {
		t.Fatal("a private key accepted")
	}
}

// TestAlgorithmConfusion: an HS256 token whose "secret" is the server's
// public key (what an attacker knows) is refused, whether or not the
// server has an HMAC secret too.
func TestAlgorithmConfusion(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	pemKey := pemOf(t, &rk.PublicKey)
	keys, err := auth.ParsePublicKeys(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	forged := sign(t, jwt.SigningMethodHS256, pemKey, valid("alice"), "")
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	forgedDER := sign(t, jwt.SigningMethodHS256, der, valid("alice"), "")
	for name, cfg := range map[string]auth.Config{
		"public key only":   {PublicKeys: keys},
		"secret and public": {PublicKeys: keys, HMACSecret: secret},
	} {
		v := newVerifier(t, cfg)
		mustFail(t, name+": HS256 signed with the PEM", v, forged, auth.ErrInvalid)
		mustFail(t, name+": HS256 signed with the DER", v, forgedDER, auth.ErrInvalid)
		if _, err := verify(t, v, sign(t, jwt.SigningMethodRS256, rk, valid("alice"), "")); err != nil {
			t.Fatalf("%s: the real RS256: %v", name, err)
		}
	}
}

// jwksServer serves a JWK Set whose keys a test replaces.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey
	fetches atomic.Int64
	delay   chan struct{} // when set, each fetch waits for it to be closed
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{keys: map[string]*rsa.PrivateKey{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		delay := s.delay
		var set jwkset.JWKSMarshal
		for kid, k := range s.keys {
			j, err := jwkset.NewJWKFromKey(&k.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, USE: jwkset.UseSig, ALG: jwkset.AlgRS256}})
			if err != nil {
				t.Error(err)
			}
			set.Keys = append(set.Keys, j.Marshal())
		}
		// An HMAC key in the set is ignored (else a token could name it).
		set.Keys = append(set.Keys, jwkset.JWKMarshal{KTY: jwkset.KtyOct, KID: "oct", K: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"})
		s.mu.Unlock()
		if delay != nil {
			<-delay
		}
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(kid string, k *rsa.PrivateKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k == nil {
		delete(s.keys, kid)
	} else {
		s.keys[kid] = k
	}
}

func TestJWKSRotation(t *testing.T) {
	srv := newJWKSServer(t)
	ka, _ := rsa.GenerateKey(rand.Reader, 2048)
	kb, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv.set("a", ka)
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, JWKSMinRefresh: 300 * time.Millisecond})
	if c, err := verify(t, v, sign(t, jwt.SigningMethodRS256, ka, valid("alice"), "a")); err != nil || c.Subject != "alice" {
		t.Fatalf("key a: %+v %v", c, err)
	}
	if c, err := verify(t, v, sign(t, jwt.SigningMethodRS256, ka, valid("alice"), "")); err != nil || c.Subject != "alice" {
		t.Fatalf("key a without a kid: %+v %v", c, err)
	}
	mustFail(t, "HS256 naming the set's HMAC key", v, sign(t, jwt.SigningMethodHS256, secret, valid("alice"), "oct"), auth.ErrInvalid)
	// Rotation: b replaces a. The first token of b waits for a fetch.
	time.Sleep(300 * time.Millisecond)
	srv.set("b", kb)
	srv.set("a", nil)
	before := srv.fetches.Load()
	if c, err := verify(t, v, sign(t, jwt.SigningMethodRS256, kb, valid("bob"), "b")); err != nil || c.Subject != "bob" {
		t.Fatalf("key b after the rotation: %+v %v", c, err)
	}
	if n := srv.fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches for the new kid, want 1", n)
	}
	// An unknown kid right after: refused at once, no fetch.
	mustFail(t, "an unknown kid within the min refresh", v, sign(t, jwt.SigningMethodRS256, kb, valid("bob"), "zzz"), auth.ErrInvalid)
	if n := srv.fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches after an unknown kid within the min refresh, want 1", n)
	}
	mustFail(t, "key a, gone from the set", v, sign(t, jwt.SigningMethodRS256, ka, valid("alice"), "a"), auth.ErrInvalid)
	if st := v.Stats(); st.Fetches < 2 || st.Refused < 1 || st.Waiting != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestJWKSWaitersShareAFetch: tokens with a new kid wait for one fetch
// together, beyond MaxWaiting they are refused, and Verify never blocks.
func TestJWKSWaitersShareAFetch(t *testing.T) {
	srv := newJWKSServer(t)
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv.set("a", k)
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, JWKSMinRefresh: time.Millisecond, MaxWaiting: 3})
	if _, err := verify(t, v, sign(t, jwt.SigningMethodRS256, k, valid("alice"), "a")); err != nil {
		t.Fatal(err)
	}
	delay := make(chan struct{})
	srv.mu.Lock()
	srv.delay = delay
	srv.mu.Unlock()
	srv.set("b", k)
	time.Sleep(5 * time.Millisecond)
	before := srv.fetches.Load()
	tok := sign(t, jwt.SigningMethodRS256, k, valid("alice"), "b")
	answers := make(chan error, 4)
	for range 4 {
		start := time.Now()
		v.Verify(tok, func(_ auth.Claims, err error) { answers <- err })
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("Verify blocked for %v", d)
		}
	}
	if err := <-answers; !errors.Is(err, auth.ErrBusy) { // the fourth, at once
		t.Fatalf("beyond MaxWaiting: %v, want ErrBusy", err)
	}
	if st := v.Stats(); st.Waiting != 3 {
		t.Fatalf("%d waiting, want 3", st.Waiting)
	}
	close(delay)
	for range 3 {
		if err := <-answers; err != nil {
			t.Fatalf("a waiter: %v", err)
		}
	}
	if n := srv.fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches for 3 waiters, want 1", n)
	}
}

func TestSignHS256(t *testing.T) {
	v := newVerifier(t, auth.Config{HMACSecret: secret, Audience: "chat"})
	tok, err := auth.SignHS256(secret, auth.Token{Subject: "alice", TTL: time.Hour, Rooms: []string{"a"}, Audience: "chat", Color: "#000000"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := verify(t, v, tok)
	if err != nil || c.Subject != "alice" || c.MayJoin("b") || !c.MayJoin("a") || c.Color != "#000000" {
		t.Fatalf("%+v %v", c, err)
	}
}
