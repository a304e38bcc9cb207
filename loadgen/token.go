package loadgen

import (
	"time"

	"github.com/golang-jwt/jwt/v5"

	"imload/loadgen/wire"
)

// Tokens (Scenario.JWTSecret): every simulated user gets a JSON Web Token
// signed with the secret (HS256, sub its user name, exp Scenario.JWTTTL
// after it is made), which its tabs attach with, as the tabs of a browser
// share one login. When the server says a session's token expires soon
// (token_expiring), the tab refreshes it with the browser's current token,
// or a new one if that is past half its life: what the SharedWorker does
// when it asks a tab for a token, at attach and refresh only.

// token returns the browser's token for a command made now, a new one if
// it has none or the one it has is past half its life (b.mu held).
func (b *browser) token() string {
	e := b.e
	now := time.Now()
	if b.jwt != "" && b.jwtExp.Sub(now) > e.sc.JWTTTL/2 {
		return b.jwt
	}
	exp := now.Add(e.sc.JWTTTL)
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   b.name,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString(e.sc.JWTSecret)
	if err != nil { // HS256 with a []byte key does not fail
		return ""
	}
	b.jwt, b.jwtExp = s, exp
	e.tokensMinted.Add(1)
	return s
}

// refresh refreshes the token of t's session (b.mu held): the server said
// it expires soon.
func (s *sock) refresh(t *tab) {
	c := s.b.command(wire.Refresh)
	c.JWT = s.b.token()
	s.issue(pending{t: t}, c)
}
