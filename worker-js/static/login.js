// @ts-check
// login.js: the demo page's sign-in for a server started with --auth jwt
// (docs/browser.md, "The demo page"). The page's getToken gives the hub the
// token pasted into the "You" card (the output of `imload token
// --secret-file F --sub alice`), kept in sessionStorage for reloads of the
// tab; when it is missing, expired, or not newer than the one expiring, the
// card asks for one and getToken waits for it. The hub asks one tab per
// user, so a second tab of the same user (?name=alice) signs in by itself.
// With --auth none none of this shows: names are picked as always.
import { decodeJwt, AUTH_JWT } from './core/auth.js';
import { ERR, CLIENT_ERR } from './core/errors.js';

const KEY = 'imload.jwt';

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);
/** @param {string} s */
const fold = (s) => String(s || '').toLowerCase();
/** @param {number} ms */
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

export class PageLogin {
  /**
   * @param {{onToken: () => void, storage?: Storage}} o onToken: a token
   *   was pasted while the hub was not waiting for one (after an auth_error
   *   or a disconnect): the page attaches again (retryAuth)
   */
  constructor({ onToken, storage = sessionStorage }) {
    this.onToken = onToken;
    this.storage = storage;
    /** @type {{req: {user: string, reason: string, after: number}, resolve: (jwt: string) => void}[]} */
    this.waiting = [];
    this.user = '';
    // failed: the session could not attach (auth_error) and the hub has not
    // asked again since: a token pasted now signs in again (retryAuth), even
    // if a getToken the hub gave up on (tokenTimeoutMs) still waits here
    this.failed = false;
    $('token-form').addEventListener('submit', (/** @type {Event} */ e) => { e.preventDefault(); this.submit(); });
    $('token-again').addEventListener('click', () => { $('token-again').hidden = true; this.onToken(); });
  }

  /** saved is the token pasted in this tab, or ''. */
  saved() { try { return this.storage.getItem(KEY) || ''; } catch { return ''; } }

  /**
   * fits: jwt is a token of user (when given) that lives past `after` and
   * more than two seconds from now.
   * @param {string} jwt @param {{user: string, after: number}} req
   */
  fits(jwt, req) {
    const d = decodeJwt(jwt);
    return !!d && d.exp > Math.max(Date.now() + 2000, req.after || 0) && (!req.user || fold(d.sub) === fold(req.user));
  }

  /**
   * getToken is the page's getToken (connect option): the pasted token if
   * it fits, else the card asks for one and this waits for it.
   * @param {{user: string, reason: string, after: number}} req
   * @returns {Promise<string>}
   */
  getToken = (req) => {
    this.setMode(AUTH_JWT);
    this.failed = false;
    const t = this.saved();
    if (t && this.fits(t, req)) return Promise.resolve(t);
    const d = t ? decodeJwt(t) : null;
    let why = `This server signs users in with tokens (--auth jwt). Paste one${req.user ? ` for ${req.user}` : ''}, from: imload token --secret-file secret.txt --sub ${req.user || 'alice'}`;
    if (d && req.user && fold(d.sub) !== fold(req.user)) why = `The token of this tab is ${d.sub}'s; this tab is ${req.user}. Paste a token for ${req.user}.`;
    else if (d && req.reason === 'refresh') why = `Your token expires at ${clock(d.exp)}: paste a new one to stay signed in.`;
    else if (d) why = `Your token expired at ${clock(d.exp)}: paste a new one.`;
    this.ask(why);
    return new Promise((resolve) => { this.waiting.push({ req, resolve }); });
  };

  /** ask shows the token form with why. @param {string} why @param {string} [error] */
  ask(why, error = '') {
    $('token-form').hidden = false;
    $('token-why').textContent = why;
    $('token-error').textContent = error;
  }

  submit() {
    const jwt = String($('token-input').value || '').trim();
    const d = decodeJwt(jwt);
    if (!d) { $('token-error').textContent = 'That is not a token: paste the whole output of imload token (three parts separated by dots).'; return; }
    if (d.exp <= Date.now() + 2000) { $('token-error').textContent = `That token expired at ${clock(d.exp)}.`; return; }
    const other = this.waiting.find((w) => w.req.user && fold(w.req.user) !== fold(d.sub));
    if (other) { $('token-error').textContent = `That token is ${d.sub}'s; this tab is ${other.req.user}.`; return; }
    try { this.storage.setItem(KEY, jwt); } catch { /* kept for this page only */ }
    $('token-input').value = '';
    $('token-error').textContent = '';
    $('token-form').hidden = true;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.resolve(jwt);
    if (!waiting.length || this.failed) this.onToken();
  }

  /** setMode marks the page as signing in with tokens (the name form goes). @param {string} auth */
  setMode(auth) {
    document.body.dataset.auth = auth === AUTH_JWT ? AUTH_JWT : '';
  }

  /** signedIn shows until when the session's token lasts. @param {{user: string, expires?: number}} s */
  signedIn(s) {
    this.user = s.user || '';
    if (!s.expires) return;
    $('token-form').hidden = true;
    $('token-note').hidden = false;
    $('token-note').textContent = `Signed in with a token until ${clock(s.expires)}.`;
  }

  /**
   * authError: the session could not attach (getToken failed, or the
   * server refused the token): forget the token and ask for another.
   * @param {{error: string, msg: string}} e
   */
  authError(e) {
    try { this.storage.removeItem(KEY); } catch { /* nothing kept */ }
    this.failed = true;
    const why = e.error === ERR.forbidden ? 'The server refused the token for this tab.'
      : e.error === CLIENT_ERR.noToken ? 'This tab got no token to sign in with.' : 'The server did not take the token.';
    this.ask(`${why} Paste another one.`, e.msg || e.error);
  }

  /**
   * detached: the server disconnected this user; the page does not sign in
   * again by itself ("Sign in again" does).
   * @param {{error: string, msg: string, reason?: string}} e
   */
  detached(e) {
    $('token-note').hidden = false;
    $('token-note').textContent = e.error === ERR.disconnected
      ? `The server disconnected you${e.reason ? ` (${e.reason})` : ''}.`
      : `Detached by the server: ${e.msg || e.error}.`;
    $('token-again').hidden = false;
  }
}
