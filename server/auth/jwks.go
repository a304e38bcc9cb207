package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// maxJWKSBytes bounds a JWK Set's response.
const maxJWKSBytes = 1 << 20

// jwks is a JWK Set fetched from a URL: the keys in memory (jwkset's
// storage, read by keyfunc, which checks a key's alg and use against the
// token's), the fetches (one at a time, on a goroutine of its own), and
// the tokens waiting for one. No lock is held across a fetch.
type jwks struct {
	v       *Verifier
	url     string
	client  *http.Client
	own     *http.Transport // the client's transport when the verifier made it
	store   *jwkset.MemoryJWKSet
	kf      keyfunc.Keyfunc
	minGap  time.Duration
	timeout time.Duration
	maxWait int
	logger  *slog.Logger
	now     func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the fetches and the refresher

	mu        sync.Mutex
	fetching  bool
	loaded    bool      // a fetch succeeded once
	lastStart time.Time // the last fetch's start (zero: none yet)
	closed    bool
	waiting   []waiter

	fetches, fetchErrors, refused atomic.Int64
}

// waiter is a token waiting for a fetch.
type waiter struct {
	token string
	done  func(Claims, error)
}

func newJWKS(cfg *Config, v *Verifier) (*jwks, error) {
	j := &jwks{
		v: v, url: cfg.JWKSURL, client: cfg.HTTPClient, store: jwkset.NewMemoryStorage(),
		minGap: cfg.JWKSMinRefresh, timeout: cfg.JWKSTimeout, maxWait: cfg.MaxWaiting,
		logger: cfg.Logger, now: cfg.Now,
	}
	if j.minGap <= 0 {
		j.minGap = 30 * time.Second
	}
	if j.timeout <= 0 {
		j.timeout = 10 * time.Second
	}
	if j.maxWait <= 0 {
		j.maxWait = 10000
	}
	refresh := cfg.JWKSRefresh
	if refresh <= 0 {
		refresh = time.Hour
	}
	if j.client == nil {
		j.own = &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConns: 2, IdleConnTimeout: time.Minute}
		j.client = &http.Client{Transport: j.own}
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: j.store})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	j.kf = kf
	j.ctx, j.cancel = context.WithCancel(context.Background())
	j.mu.Lock()
	j.startLocked()
	j.mu.Unlock()
	j.wg.Add(1)
	go j.refresher(refresh)
	return j, nil
}

// key returns the set's keys for token t of a family (the one its kid
// names, or every key of the family for a token without a kid):
// errUnknownKID for a kid the set does not hold (or before the first
// fetch), errNoKey for a key of another family.
func (j *jwks) key(t *jwt.Token, family func(any) bool) (any, error) {
	k, err := j.kf.Keyfunc(t)
	switch {
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return nil, errUnknownKID
	case err != nil:
		return nil, err
	}
	set, ok := k.(jwt.VerificationKeySet)
	if !ok { // the key its kid names
		if !family(k) {
			return nil, errNoKey
		}
		return k, nil
	}
	keys := make([]jwt.VerificationKey, 0, len(set.Keys))
	for _, k := range set.Keys {
		if family(k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		if !j.isLoaded() {
			return nil, errUnknownKID // the first fetch is under way
		}
		return nil, errNoKey
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

func (j *jwks) isLoaded() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.loaded
}

// wait makes token wait for a fetch of the set, starting one if none is
// under way and the last began JWKSMinRefresh ago or more. It reports
// false when the token cannot wait: no fetch is allowed yet (the caller
// refuses the token), too many wait, or the verifier is closed (done is
// then called with ErrBusy before wait returns).
func (j *jwks) wait(token string, done func(Claims, error)) bool {
	j.mu.Lock()
	if j.closed || (len(j.waiting) >= j.maxWait) {
		closed := j.closed
		j.mu.Unlock()
		j.refused.Add(1)
		if closed {
			done(Claims{}, fmt.Errorf("%w: the server is stopping", ErrBusy))
		} else {
			done(Claims{}, fmt.Errorf("%w: %d tokens wait for the key set already", ErrBusy, j.maxWait))
		}
		return true
	}
	if !j.fetching {
		if !j.lastStart.IsZero() && j.now().Sub(j.lastStart) < j.minGap {
			j.mu.Unlock()
			j.refused.Add(1)
			return false
		}
		j.startLocked()
	}
	j.waiting = append(j.waiting, waiter{token: token, done: done})
	j.mu.Unlock()
	return true
}

// startLocked starts a fetch. Called under mu, with none under way.
func (j *jwks) startLocked() {
	j.fetching = true
	j.lastStart = j.now()
	j.wg.Add(1)
	go j.fetch()
}

// refresher fetches the set every interval until the verifier closes.
func (j *jwks) refresher(interval time.Duration) {
	defer j.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-j.ctx.Done():
			return
		case <-t.C:
			j.mu.Lock()
			if !j.fetching && !j.closed {
				j.startLocked()
			}
			j.mu.Unlock()
		}
	}
}

// fetch fetches the set, then verifies again the tokens that waited for it.
func (j *jwks) fetch() {
	defer j.wg.Done()
	err := j.load()
	j.fetches.Add(1)
	if err != nil {
		j.fetchErrors.Add(1)
		j.logger.Warn("cannot fetch the JWK Set: the keys fetched before stay", "url", j.url, "err", err)
	}
	j.mu.Lock()
	j.fetching = false
	j.loaded = j.loaded || err == nil
	ws := j.waiting
	j.waiting = nil
	j.mu.Unlock()
	for _, w := range ws {
		c, err := j.v.verify(w.token)
		if errors.Is(err, errUnknownKID) {
			err = fmt.Errorf("%w: unknown key id", ErrInvalid)
		}
		w.done(c, err)
	}
}

// load fetches the set and replaces the keys held (asymmetric keys only:
// an HMAC key in a public set would let a token choose its own secret).
func (j *jwks) load() error {
	ctx, cancel := context.WithTimeout(j.ctx, j.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	var set jwkset.JWKSMarshal
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&set); err != nil {
		return fmt.Errorf("decode the key set: %w", err)
	}
	keys := make([]jwkset.JWK, 0, len(set.Keys))
	for _, m := range set.Keys {
		if m.KTY != jwkset.KtyRSA && m.KTY != jwkset.KtyEC {
			continue
		}
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			j.logger.Warn("a key of the JWK Set is left out", "url", j.url, "kid", m.KID, "err", err)
			continue
		}
		keys = append(keys, k)
	}
	return j.store.KeyReplaceAll(ctx, keys)
}

// close stops the fetches; the tokens still waiting get ErrBusy.
func (j *jwks) close() {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return
	}
	j.closed = true
	j.mu.Unlock()
	j.cancel()
	j.wg.Wait()
	j.mu.Lock()
	ws := j.waiting
	j.waiting = nil
	j.mu.Unlock()
	for _, w := range ws {
		w.done(Claims{}, fmt.Errorf("%w: the server is stopping", ErrBusy))
	}
	if j.own != nil {
		j.own.CloseIdleConnections()
	}
}

func (j *jwks) stats() Stats {
	j.mu.Lock()
	n := len(j.waiting)
	j.mu.Unlock()
	return Stats{Fetches: j.fetches.Load(), FetchErrors: j.fetchErrors.Load(), Waiting: n, Refused: j.refused.Load()}
}
