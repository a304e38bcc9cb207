package auth

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ParsePublicKeys reads the public keys of a PEM file: PUBLIC KEY blocks
// (PKIX: RSA or ECDSA), RSA PUBLIC KEY blocks (PKCS #1) and the keys of
// CERTIFICATE blocks. A private key is refused: the server only verifies.
func ParsePublicKeys(data []byte) ([]any, error) {
	var keys []any
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var k any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				k = c.PublicKey
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			return nil, fmt.Errorf("a %s block: give the server the public key only", b.Type)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("a %s block: %w", b.Type, err)
		}
		switch k.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			keys = append(keys, k)
		default:
			return nil, fmt.Errorf("a %s block holds a %T key: want RSA or ECDSA", b.Type, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block)")
	}
	return keys, nil
}

// Token is what SignHS256 puts in a token.
type Token struct {
	// Subject is the user name (sub).
	Subject string
	// TTL is how long the token lasts from now (exp).
	TTL time.Duration
	// Name and Color are for display ("": left out).
	Name, Color string
	// Rooms, if not nil, are the rooms the user may join (names, or
	// prefixes ending in '*').
	Rooms []string
	// Audience and Issuer, if set, are aud and iss.
	Audience, Issuer string
}

// SignHS256 makes a token signed with secret (HS256), issued now: for
// local testing (imload token) and tests. A team's backend mints its own.
func SignHS256(secret []byte, t Token) (string, error) {
	now := time.Now()
	c := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   t.Subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.TTL)),
			Issuer:    t.Issuer,
		},
		Name: t.Name, Color: t.Color,
	}
	if t.Audience != "" {
		c.Audience = jwt.ClaimStrings{t.Audience}
	}
	if t.Rooms != nil {
		c.Rooms = &t.Rooms
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
