// Types of imload-worker-js/errors.js (static/core/errors.js), protocol 1.
// The names mirror mux/errors.go (TestErrorCodesMirrorMux).

export declare const ERR: Readonly<{
  badRequest: 'bad_request';
  malformed: 'malformed';
  unknownType: 'unknown_type';
  notAttached: 'not_attached';
  notMember: 'not_member';
  unknownRoom: 'unknown_room';
  unknownCommand: 'unknown_command';
  nameTaken: 'name_taken';
  userOffline: 'user_offline';
  sessionExists: 'session_exists';
  tooLarge: 'too_large';
  tooManySessions: 'too_many_sessions';
  rateLimited: 'rate_limited';
  connRateLimited: 'conn_rate_limited';
  ipRateLimited: 'ip_rate_limited';
  recipientBusy: 'recipient_busy';
  ipConnLimited: 'ip_conn_limited';
  nameRequired: 'name_required';
  internal: 'internal';
  shuttingDown: 'shutting_down';
  unavailable: 'unavailable';
  tooManyRooms: 'too_many_rooms';
  roomRateLimited: 'room_rate_limited';
  tokenInvalid: 'token_invalid';
  tokenExpired: 'token_expired';
  forbidden: 'forbidden';
  disconnected: 'disconnected';
  unauthorized: 'unauthorized';
}>;

export type ErrorName = (typeof ERR)[keyof typeof ERR];

export declare const CODE: Readonly<{
  ok: 200; badRequest: 400; notAttached: 401; unauthorized: 401; notMember: 403; forbidden: 403; unknownRoom: 404; unknownCommand: 405;
  nameTaken: 409; userOffline: 410; sessionExists: 412; tooLarge: 413; tooManySessions: 422;
  rateLimited: 429; nameRequired: 428; internal: 500; shuttingDown: 503; unavailable: 503;
}>;

/** Errors the browser side makes itself; no server sends them. */
export declare const CLIENT_ERR: Readonly<{ timeout: 'timeout'; unknownTab: 'unknown_tab'; closed: 'closed'; noToken: 'no_token' }>;
export type ClientErrorName = (typeof CLIENT_ERR)[keyof typeof CLIENT_ERR];
export declare const CLIENT_CODE: Readonly<{ timeout: 504; unknownTab: 401; closed: 0; noToken: 401 }>;

/** Whether a command refused with this error may succeed if sent again later, unchanged. */
export declare function transient(name: string): boolean;
