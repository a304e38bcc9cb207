package server

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"imload/mux"
	"imload/server/auth"
)

// Sessions authenticated with JSON Web Tokens (--auth jwt): real servers,
// real tokens signed here with real keys.

var testSecret = []byte("the test secret, thirty-two bytes")

// tokenClaims are a token's payload in these tests.
type tokenClaims struct {
	jwt.RegisteredClaims
	Name  string    `json:"name,omitempty"`
	Color string    `json:"color,omitempty"`
	Rooms *[]string `json:"rooms,omitempty"`
}

// claimsFor are valid claims for sub, expiring after ttl.
func claimsFor(sub string, ttl time.Duration) tokenClaims {
	return tokenClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(ttl))}}
}

// signed signs c with method and key (kid in the header if not "").
func signed(t *testing.T, m jwt.SigningMethod, key any, c tokenClaims, kid string) string {
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

// hs256 is a valid HS256 token of the test secret for sub.
func hs256(t *testing.T, sub string, ttl time.Duration) string {
	return signed(t, jwt.SigningMethodHS256, testSecret, claimsFor(sub, ttl), "")
}

// jwtConfig is the test configuration with --auth jwt and the test secret.
func jwtConfig() Config {
	cfg := testConfig()
	cfg.Auth = AuthJWT
	cfg.JWTHMACSecret = testSecret
	return cfg
}

// attachJWT attaches sid with token and returns the reply.
func (c *client) attachJWT(sid uint32, token string) mux.AttachResp {
	c.t.Helper()
	var r mux.AttachResp
	c.ok(sid, mux.CmdAttach, mux.AttachReq{JWT: token, Mode: mux.ModeLoadgen}, &r)
	return r
}

func TestJWTAttach(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keys, err := auth.ParsePublicKeys(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := jwtConfig()
	cfg.JWTPublicKeys = keys
	cfg.JWTAudience, cfg.JWTIssuer = "chat", "https://id.example"
	ts := startServer(t, cfg)
	c := dial(t, ts, nil)
	if c.hello.Auth != mux.AuthJWT || c.hello.TokenExpiringMS != cfg.TokenExpiringAhead.Milliseconds() {
		t.Fatalf("hello auth %q, token_expiring_ms %d", c.hello.Auth, c.hello.TokenExpiringMS)
	}
	good := func(sub string) tokenClaims {
		cl := claimsFor(sub, time.Hour)
		cl.Audience, cl.Issuer = jwt.ClaimStrings{"chat"}, "https://id.example"
		return cl
	}
	cl := good("alice")
	cl.Name, cl.Color = "Alice Liddell", "#336699"
	r := c.attachJWT(1, signed(t, jwt.SigningMethodHS256, testSecret, cl, ""))
	if r.User != "alice" || r.Color != "#336699" || r.Name != "Alice Liddell" || r.Token != "" || r.Expires != cl.ExpiresAt.UnixMilli() {
		t.Fatalf("attach reply %+v", r)
	}
	if r := c.attachJWT(2, signed(t, jwt.SigningMethodRS256, rk, good("bob"), "")); r.User != "bob" {
		t.Fatalf("RS256: %+v", r)
	}
	// The real owner on another connection: no first-come rule, no 409.
	c2 := dial(t, ts, nil)
	if r := c2.attachJWT(1, signed(t, jwt.SigningMethodHS256, testSecret, good("alice"), "")); r.User != "alice" {
		t.Fatalf("alice's second connection: %+v", r)
	}
	with := func(f func(*tokenClaims)) string {
		cl := good("carol")
		f(&cl)
		return signed(t, jwt.SigningMethodHS256, testSecret, cl, "")
	}
	refused := func(what string, body mux.AttachReq, code int, name string) {
		t.Helper()
		body.Mode = mux.ModeLoadgen
		f := c2.cmd(9, mux.CmdAttach, body)
		if f.Code != code || f.Err != name {
			t.Fatalf("%s: %d %s (%s), want %d %s", what, f.Code, f.Err, f.Msg, code, name)
		}
	}
	refused("no token", mux.AttachReq{Name: "carol"}, mux.CodeUnauthorized, mux.ErrTokenInvalid)
	refused("expired", mux.AttachReq{JWT: with(func(c *tokenClaims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) })}, mux.CodeUnauthorized, mux.ErrTokenExpired)
	refused("wrong signature", mux.AttachReq{JWT: signed(t, jwt.SigningMethodHS256, []byte("not the server's secret, 32 bytes"), good("carol"), "")}, mux.CodeUnauthorized, mux.ErrTokenInvalid)
	refused("wrong aud", mux.AttachReq{JWT: with(func(c *tokenClaims) { c.Audience = jwt.ClaimStrings{"other"} })}, mux.CodeUnauthorized, mux.ErrTokenInvalid)
	refused("wrong iss", mux.AttachReq{JWT: with(func(c *tokenClaims) { c.Issuer = "https://evil.example" })}, mux.CodeUnauthorized, mux.ErrTokenInvalid)
	refused("alg none", mux.AttachReq{JWT: signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good("carol"), "")}, mux.CodeUnauthorized, mux.ErrTokenInvalid)
	refused("algorithm confusion: HS256 signed with the public key", mux.AttachReq{JWT: signed(t, jwt.SigningMethodHS256, pemKey, good("carol"), "")}, mux.CodeUnauthorized, mux.ErrTokenInvalid)
	refused("a name other than the token's", mux.AttachReq{Name: "mallory", JWT: with(func(*tokenClaims) {})}, mux.CodeForbidden, mux.ErrForbidden)
	refused("a token too long", mux.AttachReq{JWT: strings.Repeat("a", mux.MaxJWTBytes+1)}, mux.CodeBadRequest, mux.ErrBadRequest)
	if r := c2.attachJWT(9, with(func(*tokenClaims) {})); r.User != "carol" {
		t.Fatalf("after the refusals: %+v", r)
	}
	// Every session is named: nick cannot rename one.
	c2.fails(9, mux.CmdNick, mux.NickReq{Name: "mallory"}, mux.CodeBadRequest, mux.ErrBadRequest)
	if n := ts.srv.counters.tokensInvalid.Load(); n < 6 {
		t.Fatalf("tokens_invalid %d", n)
	}
}

// TestJWTNoneKeepsNames: --auth none (the default) ignores a jwt and keeps
// the first-come names.
func TestJWTNoneKeepsNames(t *testing.T) {
	ts := startServer(t, testConfig())
	c := dial(t, ts, nil)
	if c.hello.Auth != "" {
		t.Fatalf("hello auth %q without --auth", c.hello.Auth)
	}
	var r mux.AttachResp
	c.ok(1, mux.CmdAttach, mux.AttachReq{Name: "alice", JWT: hs256(t, "bob", time.Hour)}, &r)
	if r.User != "alice" || r.Token == "" || r.Expires != 0 {
		t.Fatalf("attach %+v", r)
	}
	c.fails(1, mux.CmdRefresh, mux.RefreshReq{JWT: hs256(t, "alice", time.Hour)}, mux.CodeBadRequest, mux.ErrBadRequest)
	c2 := dial(t, ts, nil)
	c2.fails(1, mux.CmdAttach, mux.AttachReq{Name: "alice"}, mux.CodeNameTaken, mux.ErrNameTaken)
}

// TestJWTAnotherUserOnOneConnection defines what a token of another user
// does on a connection: a new session attached with it is that user (the
// tabs of one browser may be different users); a refresh of a session
// with it is refused (403 forbidden) and the session keeps its token.
func TestJWTAnotherUserOnOneConnection(t *testing.T) {
	ts := startServer(t, jwtConfig())
	c := dial(t, ts, nil)
	a := c.attachJWT(1, hs256(t, "alice", time.Hour))
	if b := c.attachJWT(2, hs256(t, "bob", time.Hour)); b.User != "bob" || a.User != "alice" {
		t.Fatalf("users %q and %q", a.User, b.User)
	}
	other := dial(t, ts, nil)
	other.attachJWT(1, hs256(t, "carol", time.Hour))
	var dm mux.DMResp
	other.ok(1, mux.CmdDM, mux.DMReq{To: "bob", Text: "hi bob"}, &dm)
	if f := c.push(mux.EvDM, nil); len(f.SIDs) != 1 || f.SIDs[0] != 2 || dm.Sessions != 1 {
		t.Fatalf("dm to bob pushed to %v (%d sessions), want session 2 only", f.SIDs, dm.Sessions)
	}
	c.fails(1, mux.CmdRefresh, mux.RefreshReq{JWT: hs256(t, "bob", 2*time.Hour)}, mux.CodeForbidden, mux.ErrForbidden)
	c.join(1, "r")
	if s := c.send(1, "r", "still alice"); s.Offset != 1 {
		t.Fatalf("send after the refused refresh: %+v", s)
	}
	if m := c.push(mux.EvMsg, &mux.Message{}); m.SIDs[0] != 1 {
		t.Fatalf("push %+v", m)
	}
}

func TestJWTRooms(t *testing.T) {
	ts := startServer(t, jwtConfig())
	c := dial(t, ts, nil)
	cl := claimsFor("alice", time.Hour)
	cl.Rooms = &[]string{"lobby", "team-*"}
	c.attachJWT(1, signed(t, jwt.SigningMethodHS256, testSecret, cl, ""))
	c.attachJWT(2, hs256(t, "bob", time.Hour)) // every room
	c.join(1, "lobby")
	c.join(1, "team-red")
	c.join(2, "secret")
	c.send(2, "secret", "for bob's eyes")
	c.fails(1, mux.CmdJoin, mux.JoinReq{Room: "secret"}, mux.CodeForbidden, mux.ErrForbidden)
	c.fails(1, mux.CmdHistory, mux.HistoryReq{Room: "secret"}, mux.CodeForbidden, mux.ErrForbidden)
	c.fails(1, mux.CmdWho, mux.WhoReq{Room: "secret"}, mux.CodeForbidden, mux.ErrForbidden)
	// A join naming several sessions is refused whole when one may not.
	c.fails(2, mux.CmdJoin, mux.JoinReq{Room: "other", SIDs: []uint32{1}}, mux.CodeForbidden, mux.ErrForbidden)
	c.fails(2, mux.CmdWho, mux.WhoReq{Room: "other"}, mux.CodeUnknownRoom, mux.ErrUnknownRoom) // refused whole: not made
	// A refresh whose token allows fewer rooms leaves the others.
	cl2 := claimsFor("alice", 2*time.Hour)
	cl2.Rooms = &[]string{"lobby"}
	var rr mux.RefreshResp
	c.ok(1, mux.CmdRefresh, mux.RefreshReq{JWT: signed(t, jwt.SigningMethodHS256, testSecret, cl2, "")}, &rr)
	if len(rr.Left) != 1 || rr.Left[0] != "team-red" || rr.Expires != cl2.ExpiresAt.UnixMilli() {
		t.Fatalf("refresh %+v, want team-red left", rr)
	}
	c.fails(1, mux.CmdSend, mux.SendReq{Room: "team-red", Text: "x"}, mux.CodeNotMember, mux.ErrNotMember)
	c.fails(1, mux.CmdJoin, mux.JoinReq{Room: "team-red"}, mux.CodeForbidden, mux.ErrForbidden)
}

// tokenConfig is jwtConfig with token_expiring one second ahead.
func tokenConfig() Config {
	cfg := jwtConfig()
	cfg.TokenExpiringAhead = time.Second
	return cfg
}

// TestJWTRefreshExtends: token_expiring comes ahead of the expiry, and a
// refresh before it keeps the session past its first token's expiry.
func TestJWTRefreshExtends(t *testing.T) {
	ts := startServer(t, tokenConfig())
	c := dial(t, ts, nil)
	first := claimsFor("alice", 3*time.Second)
	a := c.attachJWT(1, signed(t, jwt.SigningMethodHS256, testSecret, first, ""))
	c.join(1, "r")
	var te mux.TokenExpiring
	f := c.push(mux.EvTokenExpiring, &te)
	if len(f.SIDs) != 1 || f.SIDs[0] != 1 || te.Expires != a.Expires {
		t.Fatalf("token_expiring %v %+v, want session 1 expiring at %d", f.SIDs, te, a.Expires)
	}
	if left := time.Until(time.UnixMilli(te.Expires)); left < 0 || left > 1500*time.Millisecond {
		t.Fatalf("token_expiring %v before the expiry, want about 1s", left)
	}
	var rr mux.RefreshResp
	c.ok(1, mux.CmdRefresh, mux.RefreshReq{JWT: hs256(t, "alice", time.Hour)}, &rr)
	if rr.Expires <= a.Expires {
		t.Fatalf("refresh: expires %d, not after %d", rr.Expires, a.Expires)
	}
	time.Sleep(time.Until(time.UnixMilli(a.Expires)) + 300*time.Millisecond)
	if s := c.send(1, "r", "after the first expiry"); s.Offset != 1 {
		t.Fatalf("send %+v", s)
	}
	for _, f := range c.buf {
		if f.T == mux.TypePush && f.Ev == mux.EvDetached {
			t.Fatalf("detached after a refresh: %+v", f)
		}
	}
	if n := ts.srv.counters.refreshes.Load(); n != 1 {
		t.Fatalf("refreshes %d", n)
	}
}

// TestJWTExpiryDetachesOneSession: at its token's expiry a session is
// detached (a detached push, 401 token_expired); the connection and its
// other sessions stay.
func TestJWTExpiryDetachesOneSession(t *testing.T) {
	cfg := tokenConfig()
	cfg.PresenceGrace = 300 * time.Millisecond
	ts := startServer(t, cfg)
	c := dial(t, ts, nil)
	short := c.attachJWT(1, hs256(t, "alice", 2*time.Second))
	c.attachJWT(2, hs256(t, "bob", time.Hour))
	c.join(1, "r")
	c.join(2, "r")
	var d mux.Detached
	f := c.push(mux.EvDetached, &d)
	if len(f.SIDs) != 1 || f.SIDs[0] != 1 || d.Code != mux.CodeUnauthorized || d.Error != mux.ErrTokenExpired {
		t.Fatalf("detached %v %+v, want session 1, 401 token_expired", f.SIDs, d)
	}
	if late := time.Since(time.UnixMilli(short.Expires)); late < 0 || late > time.Second {
		t.Fatalf("detached %v after the expiry", late)
	}
	c.fails(1, mux.CmdSend, mux.SendReq{Room: "r", Text: "x"}, mux.CodeNotAttached, mux.ErrNotAttached)
	s := c.send(2, "r", "bob goes on")
	var m mux.Message
	if f := c.push(mux.EvMsg, &m); m.Offset != s.Offset || len(f.SIDs) != 1 || f.SIDs[0] != 2 {
		t.Fatalf("push %v %+v: want session 2 only", f.SIDs, m)
	}
	// The detach lingers in presence for the grace (the tab is expected to
	// come back with a new token), then alice leaves.
	var who mux.WhoResp
	c.ok(2, mux.CmdWho, mux.WhoReq{Room: "r"}, &who)
	if len(who.Users) != 2 {
		t.Fatalf("who %+v during the presence grace, want alice lingering beside bob", who)
	}
	time.Sleep(ts.srv.cfg.presenceGrace() + 200*time.Millisecond)
	c.ok(2, mux.CmdWho, mux.WhoReq{Room: "r"}, &who)
	if len(who.Users) != 1 || who.Users[0].Name != "bob" {
		t.Fatalf("who %+v after the presence grace, want bob alone", who)
	}
	// The session attaches again with a new token.
	c.attachJWT(1, hs256(t, "alice", time.Hour))
	if ts.srv.counters.sessionsExpired.Load() != 1 || ts.srv.expiries.size() != 2 {
		t.Fatalf("expired %d, tracked %d", ts.srv.counters.sessionsExpired.Load(), ts.srv.expiries.size())
	}
}

// jwksServer serves a JWK Set of RSA keys a test replaces.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys map[string]*rsa.PrivateKey
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{keys: map[string]*rsa.PrivateKey{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var set jwkset.JWKSMarshal
		for kid, k := range s.keys {
			j, err := jwkset.NewJWKFromKey(&k.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgRS256}})
			if err != nil {
				t.Error(err)
				return
			}
			set.Keys = append(set.Keys, j.Marshal())
		}
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) rotate(kid string, k *rsa.PrivateKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.keys)
	s.keys[kid] = k
}

// TestJWTJWKSRotation: keys from a JWK Set; a token of a key the set did
// not have when fetched waits for a new fetch, and the commands after it
// on its connection wait behind it, in order.
func TestJWTJWKSRotation(t *testing.T) {
	set := newJWKSServer(t)
	ka, _ := rsa.GenerateKey(rand.Reader, 2048)
	kb, _ := rsa.GenerateKey(rand.Reader, 2048)
	set.rotate("a", ka)
	cfg := testConfig()
	cfg.Auth, cfg.JWKSURL, cfg.JWKSMinRefresh = AuthJWT, set.URL, 10*time.Millisecond
	ts := startServer(t, cfg)
	c := dial(t, ts, nil)
	if r := c.attachJWT(1, signed(t, jwt.SigningMethodRS256, ka, claimsFor("alice", time.Hour), "a")); r.User != "alice" {
		t.Fatalf("key a: %+v", r)
	}
	set.rotate("b", kb)
	time.Sleep(20 * time.Millisecond)
	// attach (kid b: a fetch) and a join in one message: the join waits.
	tok := signed(t, jwt.SigningMethodRS256, kb, claimsFor("bob", time.Hour), "b")
	msg := string(mux.AppendCmd(nil, 2, 100, mux.CmdAttach, mux.EncodeBody(mux.AttachReq{JWT: tok}))) + "\n" +
		string(mux.AppendCmd(nil, 2, 101, mux.CmdJoin, mux.EncodeBody(mux.JoinReq{Room: "r"})))
	c.sendRaw(msg)
	at := c.next(func(f mux.Frame) bool { return f.T == mux.TypeReply && f.SID == 2 && f.Seq == 100 })
	jn := c.next(func(f mux.Frame) bool { return f.T == mux.TypeReply && f.SID == 2 && f.Seq == 101 })
	if at.Code != mux.CodeOK || jn.Code != mux.CodeOK {
		t.Fatalf("attach %d %s %s, join %d %s", at.Code, at.Err, at.Msg, jn.Code, jn.Err)
	}
	c.fails(3, mux.CmdAttach, mux.AttachReq{JWT: signed(t, jwt.SigningMethodRS256, ka, claimsFor("carol", time.Hour), "a")}, mux.CodeUnauthorized, mux.ErrTokenInvalid)
	if st := ts.srv.auth.Stats(); st.Fetches < 2 {
		t.Fatalf("JWK Set stats %+v", st)
	}
}
