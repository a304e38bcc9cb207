// Package auth verifies the JSON Web Tokens that authenticate a session
// (imload serve --auth jwt, docs/protocol.md "Authentication"): their
// signature, with an HMAC secret (HS256, HS384, HS512), public keys from a
// PEM file (RS256…, PS256…, ES256…) or the keys of a JWK Set fetched from
// a URL and kept up to date; their times (exp required, nbf); their
// audience and issuer when configured; and their claims (sub a valid user
// name, name and color for display, rooms).
//
// # Where verification runs, and what an unknown key costs
//
// Verify answers through a done function, like the engine (package
// server/engine): at once, on the caller's goroutine, when the key is at
// hand (a secret, a PEM key, a JWK Set key already fetched) — an HMAC
// costs a few microseconds, an RSA or ECDSA signature tens, which the
// server's workers can afford — and later, from the verifier's own
// goroutine, when the token names a key id (kid) the JWK Set does not
// hold: that token waits while the set is fetched again. So no caller
// ever waits for the network. What an unknown kid may cost is bounded:
// one fetch at a time, however many tokens wait for it; no new fetch
// within Config.JWKSMinRefresh of the last one (a token with an unknown
// kid is then refused at once: an attacker making up kids costs a map
// look-up); at most Config.MaxWaiting tokens waiting (beyond, ErrBusy).
// The set is also fetched every Config.JWKSRefresh, so that revoked keys
// go.
//
// # Algorithms
//
// Only the algorithms of the keys configured are accepted (a token whose
// alg is "none", or any other, is refused before a key is looked up), and
// each family gets only its own kind of key: an HS256 token is checked
// with the HMAC secret and nothing else, so an HS256 token "signed" with
// a public key as its secret (algorithm confusion) fails.
package auth

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"imload/mux"
)

// Errors of Verify. The server answers ErrInvalid with 401 token_invalid,
// ErrExpired with 401 token_expired and ErrBusy with 503 unavailable;
// each is wrapped with a short reason that never quotes the token.
var (
	// ErrInvalid: the token is not one this server accepts (malformed, a
	// wrong signature, an algorithm or key it does not know, a wrong
	// audience or issuer, a claim that breaks the rules).
	ErrInvalid = errors.New("token invalid")
	// ErrExpired: the token's exp is past.
	ErrExpired = errors.New("token expired")
	// ErrBusy: the token waits for a JWK Set fetch and too many wait
	// already, or the verifier is closed: try again shortly.
	ErrBusy = errors.New("token verification busy")
)

// Config says which tokens a Verifier accepts. At least one of HMACSecret,
// PublicKeys and JWKSURL is needed.
type Config struct {
	// HMACSecret verifies HS256, HS384 and HS512 tokens.
	HMACSecret []byte
	// PublicKeys verify RS256/384/512 and PS256/384/512 tokens (RSA keys)
	// and ES256/384/512 (ECDSA keys): see ParsePublicKeys.
	PublicKeys []any
	// JWKSURL is a JWK Set (RFC 7517) to fetch the public keys from; a
	// token's kid names its key. Symmetric keys in the set are ignored.
	JWKSURL string
	// JWKSRefresh is how often the set is fetched again (default 1 h).
	JWKSRefresh time.Duration
	// JWKSMinRefresh is the least time between two fetches made because a
	// token named an unknown kid (default 30 s).
	JWKSMinRefresh time.Duration
	// JWKSTimeout bounds one fetch (default 10 s).
	JWKSTimeout time.Duration
	// MaxWaiting bounds the tokens waiting for a fetch (default 10,000).
	MaxWaiting int
	// HTTPClient fetches the set (default: a client of the verifier's own,
	// whose idle connections Close closes).
	HTTPClient *http.Client

	// Audience, if set, must be one of the token's aud; Issuer, if set,
	// must be its iss.
	Audience, Issuer string

	// Logger receives the fetches' failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Claims are what a valid token says of its session.
type Claims struct {
	// Subject is the user name (sub), a valid name (mux.CheckName).
	Subject string
	// Expires is the token's exp.
	Expires time.Time
	// Name and Color are for display (name, color): "" when absent.
	Name, Color string
	// Rooms are the rooms the session may join (rooms): names, or
	// prefixes ending in '*' ("*" alone: every room). AllRooms is set when
	// the claim is absent (every room).
	Rooms    []string
	AllRooms bool
}

// MayJoin reports whether the claims allow room.
func (c *Claims) MayJoin(room string) bool {
	if c.AllRooms {
		return true
	}
	for _, r := range c.Rooms {
		if p, ok := strings.CutSuffix(r, "*"); ok {
			if strings.HasPrefix(room, p) {
				return true
			}
		} else if r == room {
			return true
		}
	}
	return false
}

// tokenClaims is the payload of a token as it is decoded.
type tokenClaims struct {
	jwt.RegisteredClaims
	Name  string    `json:"name,omitempty"`
	Color string    `json:"color,omitempty"`
	Rooms *[]string `json:"rooms,omitempty"`
}

// Verifier verifies tokens. Its methods are safe for concurrent use.
type Verifier struct {
	parser *jwt.Parser
	hmac   []byte
	rsa    []jwt.VerificationKey // *rsa.PublicKey
	ec     []jwt.VerificationKey // *ecdsa.PublicKey
	jwks   *jwks                 // nil without a JWK Set
	now    func() time.Time
}

// Families of algorithms, and the algorithms of each that are accepted.
var (
	hmacAlgs = []string{"HS256", "HS384", "HS512"}
	rsaAlgs  = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ecAlgs   = []string{"ES256", "ES384", "ES512"}
)

// New makes a Verifier. With a JWK Set it starts fetching it at once (a
// token that comes before the set waits for it) and keeps a goroutine that
// fetches it again every JWKSRefresh, until Close.
func New(cfg Config) (*Verifier, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{hmac: cfg.HMACSecret, now: cfg.Now}
	var algs []string
	if len(cfg.HMACSecret) > 0 {
		if len(cfg.HMACSecret) < 32 {
			return nil, fmt.Errorf("auth: the HMAC secret has %d bytes: HS256 needs at least 32", len(cfg.HMACSecret))
		}
		algs = append(algs, hmacAlgs...)
	}
	for _, k := range cfg.PublicKeys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			v.rsa = append(v.rsa, k)
		case *ecdsa.PublicKey:
			v.ec = append(v.ec, k)
		default:
			return nil, fmt.Errorf("auth: a public key of type %T: want RSA or ECDSA", k)
		}
	}
	if len(v.rsa) > 0 || cfg.JWKSURL != "" {
		algs = append(algs, rsaAlgs...)
	}
	if len(v.ec) > 0 || cfg.JWKSURL != "" {
		algs = append(algs, ecAlgs...)
	}
	if len(algs) == 0 {
		return nil, errors.New("auth: no key: give an HMAC secret, public keys or a JWK Set URL")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(algs), jwt.WithExpirationRequired(), jwt.WithTimeFunc(cfg.Now)}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	if cfg.JWKSURL != "" {
		j, err := newJWKS(&cfg, v)
		if err != nil {
			return nil, err
		}
		v.jwks = j
	}
	return v, nil
}

// Verify verifies token and calls done with its claims, or an error
// wrapping ErrInvalid, ErrExpired or ErrBusy: before it returns when the
// key is at hand, else later from the verifier's goroutine (a token whose
// kid the JWK Set does not hold yet, while the set is fetched).
func (v *Verifier) Verify(token string, done func(Claims, error)) {
	c, err := v.verify(token)
	if errors.Is(err, errUnknownKID) {
		if v.jwks.wait(token, done) {
			return
		}
		err = fmt.Errorf("%w: unknown key id (the key set was fetched moments ago)", ErrInvalid)
	}
	done(c, err)
}

// Close stops fetching the JWK Set: the tokens that wait for a fetch get
// ErrBusy, and no done is called once Close has returned.
func (v *Verifier) Close() {
	if v.jwks != nil {
		v.jwks.close()
	}
}

// Stats are the verifier's counters.
type Stats struct {
	// Fetches and FetchErrors count the JWK Set's fetches and those that
	// failed.
	Fetches, FetchErrors int64
	// Waiting is the tokens waiting for a fetch now; Refused counts the
	// tokens refused at once for an unknown kid (no fetch allowed yet) or
	// because MaxWaiting tokens waited.
	Waiting int
	Refused int64
}

// Stats returns the verifier's counters.
func (v *Verifier) Stats() Stats {
	if v.jwks == nil {
		return Stats{}
	}
	return v.jwks.stats()
}

// errUnknownKID is verify's error for a token whose kid the JWK Set does
// not hold.
var errUnknownKID = errors.New("unknown kid")

// verify verifies token with the keys at hand.
func (v *Verifier) verify(token string) (Claims, error) {
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, v.key)
	if err != nil {
		return Claims{}, classify(err)
	}
	return checkClaims(&tc)
}

// key returns the keys that may have signed t: those of its algorithm's
// family only.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	switch {
	case strings.HasPrefix(alg, "HS"):
		if len(v.hmac) == 0 {
			return nil, errNoKey
		}
		return v.hmac, nil
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		return v.asymmetric(t, v.rsa, isRSA)
	case strings.HasPrefix(alg, "ES"):
		return v.asymmetric(t, v.ec, isEC)
	}
	return nil, errNoKey
}

// errNoKey is key's error for an algorithm no key is configured for.
var errNoKey = errors.New("no key for this algorithm")

func isRSA(k any) bool { _, ok := k.(*rsa.PublicKey); return ok }
func isEC(k any) bool  { _, ok := k.(*ecdsa.PublicKey); return ok }

// asymmetric returns the keys of one family (static: the PEM keys, family:
// whether a key is of it) that may have signed t. With a JWK Set, a token
// with a kid is checked against the set's key of that kid only (a kid the
// set does not hold is errUnknownKID: the set is fetched again), and a
// token without one against the PEM keys or, without any, every key of
// the set of the family; without a set, against the PEM keys.
func (v *Verifier) asymmetric(t *jwt.Token, static []jwt.VerificationKey, family func(any) bool) (any, error) {
	_, hasKID := t.Header["kid"].(string)
	if v.jwks != nil && (hasKID || len(static) == 0) {
		return v.jwks.key(t, family)
	}
	if len(static) == 0 {
		return nil, errNoKey
	}
	return jwt.VerificationKeySet{Keys: static}, nil
}

// classify turns the parser's error into ErrInvalid or ErrExpired with a
// short reason (errUnknownKID passes as it is).
func classify(err error) error {
	reason := "malformed"
	switch {
	case errors.Is(err, errUnknownKID):
		return errUnknownKID
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: exp is past", ErrExpired)
	case errors.Is(err, errNoKey):
		reason = "no key of this server for its algorithm"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		reason = "bad signature, or an algorithm this server does not accept"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		reason = "no key of this server can verify it"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		reason = "a required claim (exp) is missing"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		reason = "wrong audience (aud)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason = "wrong issuer (iss)"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		reason = "not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		reason = "invalid claims"
	}
	return fmt.Errorf("%w: %s", ErrInvalid, reason)
}

// checkClaims checks the claims imload reads and returns them.
func checkClaims(tc *tokenClaims) (Claims, error) {
	bad := func(format string, args ...any) (Claims, error) {
		return Claims{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if tc.Subject == "" {
		return bad("sub is missing")
	}
	if mux.CheckName(tc.Subject) != nil {
		return bad("sub is not a valid user name")
	}
	if tc.ExpiresAt == nil {
		return bad("exp is missing")
	}
	c := Claims{Subject: tc.Subject, Expires: tc.ExpiresAt.Time, Name: tc.Name, Color: tc.Color, AllRooms: tc.Rooms == nil}
	if c.Name != "" && !ValidDisplayName(c.Name) {
		return bad("name is not a display name (1-%d bytes of printable UTF-8)", MaxDisplayNameBytes)
	}
	if c.Color != "" && !ValidColor(c.Color) {
		return bad("color is not #rrggbb")
	}
	if tc.Rooms != nil {
		c.Rooms = *tc.Rooms
		for _, r := range c.Rooms {
			if !ValidRoomPattern(r) {
				return bad("rooms holds %q, neither a room name nor a prefix ending in *", mux.Echo(r))
			}
		}
	}
	return c, nil
}

// MaxDisplayNameBytes bounds the name claim.
const MaxDisplayNameBytes = 64

// ValidDisplayName reports whether s may be a display name: 1 to
// MaxDisplayNameBytes bytes of valid UTF-8 without control characters.
func ValidDisplayName(s string) bool {
	if s == "" || len(s) > MaxDisplayNameBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// ValidColor reports whether s is a colour "#rrggbb" (lower- or
// upper-case hex digits).
func ValidColor(s string) bool {
	if len(s) != 7 || s[0] != '#' {
		return false
	}
	for i := 1; i < 7; i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// ValidRoomPattern reports whether s may be an entry of the rooms claim:
// a room name, a room name's prefix followed by '*', or "*".
func ValidRoomPattern(s string) bool {
	if p, ok := strings.CutSuffix(s, "*"); ok {
		return p == "" || mux.ValidRoom(p)
	}
	return mux.ValidRoom(s)
}
