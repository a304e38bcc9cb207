// @ts-check
// errors.js: the error names and codes of the protocol (docs/protocol.md §5),
// one module for the hub, client.js and the page. ERR mirrors the Err
// constants of mux/errors.go key for key (ErrNameTaken -> ERR.nameTaken);
// TestErrorCodesMirrorMux (errors_test.go) checks the two lists are the
// same. Switch on the name (err.error), which is more specific than the code.

export const ERR = Object.freeze({
  badRequest: 'bad_request',
  malformed: 'malformed',
  unknownType: 'unknown_type',
  notAttached: 'not_attached',
  notMember: 'not_member',
  unknownRoom: 'unknown_room',
  unknownCommand: 'unknown_command',
  nameTaken: 'name_taken',
  userOffline: 'user_offline',
  sessionExists: 'session_exists',
  tooLarge: 'too_large',
  tooManySessions: 'too_many_sessions',
  rateLimited: 'rate_limited',
  connRateLimited: 'conn_rate_limited',
  ipRateLimited: 'ip_rate_limited',
  recipientBusy: 'recipient_busy',
  ipConnLimited: 'ip_conn_limited',
  nameRequired: 'name_required',
  internal: 'internal',
  shuttingDown: 'shutting_down',
  unavailable: 'unavailable',
  tooManyRooms: 'too_many_rooms',
  roomRateLimited: 'room_rate_limited',
  tokenInvalid: 'token_invalid',
  tokenExpired: 'token_expired',
  forbidden: 'forbidden',
  disconnected: 'disconnected',
  unauthorized: 'unauthorized',
});

// Reply codes (mux.Code* in mux/errors.go), key for key without "Code".
export const CODE = Object.freeze({
  ok: 200,
  badRequest: 400,
  notAttached: 401,
  unauthorized: 401,
  notMember: 403,
  forbidden: 403,
  unknownRoom: 404,
  unknownCommand: 405,
  nameTaken: 409,
  userOffline: 410,
  sessionExists: 412,
  tooLarge: 413,
  tooManySessions: 422,
  rateLimited: 429,
  nameRequired: 428,
  internal: 500,
  shuttingDown: 503,
  unavailable: 503,
});

// Errors the browser side makes itself; no server sends them.
export const CLIENT_ERR = Object.freeze({
  timeout: 'timeout',         // no reply in time (TimeoutError); code 504 inside the hub
  unknownTab: 'unknown_tab',  // a command from a tab the hub does not know (say hello first)
  closed: 'closed',           // the client was closed with the command pending
  noToken: 'no_token',        // --auth jwt: no token to attach with (getToken missing, failed, or gave an unusable one)
});

// CLIENT_CODE: the codes that go with CLIENT_ERR inside the hub.
export const CLIENT_CODE = Object.freeze({ timeout: 504, unknownTab: 401, closed: 0, noToken: 401 });

/** @type {ReadonlySet<string>} */
const TRANSIENT = new Set([ERR.rateLimited, ERR.connRateLimited, ERR.ipRateLimited, ERR.recipientBusy,
  ERR.unavailable, ERR.shuttingDown, ERR.notAttached, ERR.roomRateLimited, CLIENT_ERR.timeout]);

// transient reports whether a command refused with this error name may
// succeed if sent again later, unchanged (the outbox retries those).
/** @param {string} name */
export function transient(name) { return TRANSIENT.has(name); }
