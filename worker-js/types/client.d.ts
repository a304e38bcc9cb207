// Types of the tab API of imload-worker-js (static/client.js), hand-written.
// Versioned with the protocol: PROTOCOL_VERSION 1, BUILD "4" (the worker's
// name carries both; package.json "version" is PROTOCOL.BUILD.patch). A
// change of the protocol (docs/protocol.md) or of the tab <-> hub messages
// bumps them, and this file with them. docs/browser.md, "Integrating".

import type { ErrorName, ClientErrorName } from './errors.js';
export { ERR, CODE, CLIENT_ERR } from './errors.js';

export declare const PROTOCOL_VERSION: 1;
export declare const BUILD: string;
export declare const WORKER_NAME: string;
export declare const DEFAULT_MAX_TEXT: 4096;
export declare const MODES: Readonly<{ shared: 'shared_worker'; leader: 'leader_tab'; direct: 'direct' }>;
export type Mode = 'shared_worker' | 'leader_tab' | 'direct';

/** Hub settings; the first tab to reach a hub sets them (docs/browser.md, Settings). */
export interface HubConfig {
  flushMs?: number; flushMax?: number; historyN?: number; cacheKeep?: number;
  triesPerAddr?: number; refetches?: number; baseMs?: number; maxMs?: number; factor?: number; jitter?: number;
  /** after the fast ladder: retry this often, jittered by slowJitter (default 30000, 0.5) */
  slowMs?: number; slowJitter?: number;
  connectTimeoutMs?: number; pingMs?: number; pongTimeoutMs?: number;
  tabPingMs?: number; tabTimeoutMs?: number; tabTimeoutLockMs?: number; cmdTimeoutMs?: number;
  /** how long the socket outlives the last tab (a reload comes back within it); default 4000 */
  graceMs?: number;
  outboxRetryMs?: number; outboxMax?: number; dmKeep?: number;
  /** the server's http(s) URL; set by the `server` option */
  server?: string;
}

export interface TokenStoreLike { get(name: string): string; set(name: string, token: string): void }

/**
 * What the hub asks getToken for (--auth jwt): a JSON Web Token of `user`
 * ('' when the tab did not say who it is), because of `reason`: 'attach'
 * (no valid token of that user to attach with), 'refresh' (the server said
 * token_expiring: give one expiring after `after`, Unix ms) or 'expired'
 * (the session's token expired: it attaches again).
 */
export interface TokenRequest { user: string; reason: 'attach' | 'refresh' | 'expired' | string; after: number }

export interface ConnectOptions {
  /** '' automatic, or force 'shared', 'leader' or 'direct' */
  mode?: '' | 'shared' | 'leader' | 'direct' | Mode;
  /** attach with this name at once; '' is an anonymous session */
  name?: string;
  /** the name's token; default: the one this browser kept (tokens) or another direct tab holds */
  token?: string;
  /** every command but send rejects with TimeoutError after this (ms); default 10000 */
  cmdTimeoutMs?: number;
  config?: HubConfig;
  /** where worker.js and core/ are; default the folder of client.js */
  base?: string;
  /** the server's http(s) URL (its /lbs and /ws); default base */
  server?: string;
  /** the SharedWorker's script URL; default worker.js beside client.js */
  workerUrl?: string;
  /** the SharedWorker's name; default WORKER_NAME (tabs of one name share a worker) */
  workerName?: string;
  /** where names' tokens are kept; default localStorage "imload.tokens" */
  tokens?: TokenStoreLike | null;
  /** this tab's title in the hub's tab list */
  title?: string;
  /** --auth jwt: the user this tab is signed in as (the tokens' sub); tabs of one user share one token. Default: name */
  user?: string;
  /**
   * --auth jwt: resolves with a JSON Web Token signed by your backend (not the name token).
   * Called only when the hub needs a token, for one tab per user; a rejection
   * reaches the tab as an `auth_error` event.
   */
  getToken?: ((req: TokenRequest) => Promise<string> | string) | null;
  /**
   * --auth jwt: how long the hub waits for getToken (ms); when it passes, the attach
   * (or refresh) waiting for it fails with `no_token` (`auth_error`), the late answer
   * is ignored and the next need asks again. Default 10000; 0 waits for ever.
   */
  tokenTimeoutMs?: number;
}

/**
 * `display`: --auth jwt, the display name of a user who has one (the token's name
 * claim), for showing only; `from`, `user`, `name` are who it is.
 */
export type Display = { display?: string };
/** a room message; `display` is the sender's */
export interface Message extends Display { room: string; offset: number; epoch: string; from: string; color: string; text: string; ts: number; cid?: string }
/** a private message; `epoch` and `offset` place it in its conversation (a server with DM history); `id` is 0 in the server's history; `color`, `display` are the sender's */
export interface DM extends Display { id: number; from: string; to: string; text: string; ts: number; color?: string; cid?: string; epoch?: string; offset?: number }
/** `top`: the conversation's offset up to which this browser has synced the server's history, in `epoch`; `color`, `display`: the peer's ('' without one) */
export interface Conversation { peer: string; color: string; display: string; unread: number; count: number; last: DM | null; top: number; epoch: string }

export interface JoinReply { room: string; epoch?: string; top?: number; members?: number; cached: number; fetched: number; deferred?: boolean }
export interface SendReply { room: string; epoch: string; offset: number; ts: number; dup?: boolean }
export interface DMReply { id: number; ts: number; sessions: number; epoch?: string; offset?: number }
export interface HistoryReply { room: string; epoch: string; top: number; first: number; reset?: boolean; more?: boolean; messages: Message[] }
export interface WhoReply { room: string; users: ({ name: string; color: string } & Display)[]; anonymous: number }
export interface NickReply { user: string; color: string; token: string }

export type ConnState = 'idle' | 'connecting' | 'open' | 'waiting' | 'offline' | 'closed';

export interface ClientEvents {
  message: Message;
  history: { room: string; epoch: string; messages: Message[]; reset: boolean; source: 'cache' | 'server' | 'resume' | 'live' };
  /** a private message, live, one this tab sent, or one the server's history added (`source: 'history'`); `peer` is the other user of the conversation */
  dm: DM & { peer: string; source?: 'history' };
  /** the server's conversation with `peer` started again (a new epoch: another user holds a name now, or it expired): forget what it showed */
  dm_reset: { peer: string; epoch: string };
  /** this user's conversations changed (a DM came, one was read) */
  dm_conv: { list: Conversation[] };
  /** a message of the outbox changed state */
  outbox: { cid: string; room: string; text: string; user: string; ts: number; state: 'sending' | 'sent' | 'failed' | 'discarded';
    error: string; msg: string; offset?: number; epoch?: string; tries: number };
  presence: { kind: 'join' | 'leave'; room: string; user: string; color: string } & Display;
  notice: { text: string; reason?: string };
  state: { state: ConnState; attempt?: number; delayMs?: number; retryAt?: number; addr?: string; action?: string;
    goaway?: string; kicked?: boolean; slow?: boolean; maxText?: number; mode?: Mode;
    /** when open: 'jwt' when sessions attach with a token (--auth jwt), else '' */
    auth?: '' | 'jwt' | string };
  /** `expires`: --auth jwt, the session's token's expiry (Unix ms); `display`: its display name (the attach reply's `name`) */
  session: { sid: number; user: string; color: string; resumed: boolean; expires?: number; display?: string };
  name_refused: { name: string; error: string; msg?: string };
  tabs: { list: { tab: string; sid: number; user: string; title: string; local: boolean; attached: boolean }[]; mode: Mode };
  /** the other direct-mode tabs of this browser changed (direct mode only) */
  peers: BrowserInfo;
  mode: ModeInfo;
  left: { room: string; reason: string };
  /**
   * --auth jwt: the server detached the session and it is not attached again by
   * itself: 403 `disconnected` (the server API disconnected the user; `reason` its
   * reason). retryAuth() attaches again. (A token that expired is replaced without an event.)
   */
  detached: { code: number; error: ErrorName | string; msg: string; reason?: string };
  /**
   * --auth jwt: the session could not attach: `no_token` (getToken missing, rejected,
   * or gave no usable token), or the server refused the token (`token_invalid`,
   * `token_expired`, `forbidden`, `name_taken`). retryAuth() tries again.
   */
  auth_error: { code: number; error: ErrorName | ClientErrorName | string; msg: string };
}

export interface ModeInfo { mode: Mode; requested: string; fallback: string; leader?: boolean; hub: string; tabs: ClientEvents['tabs']['list'] }
export interface BrowserInfo { mode: Mode; sockets: number; tabs: number; open: boolean }

export declare class TimeoutError extends Error {
  name: 'TimeoutError'; code: 0; error: 'timeout'; cmd: string;
  constructor(cmd: string, ms: number);
}

export declare class CommandError extends Error {
  name: 'CommandError'; code: number; error: ErrorName | ClientErrorName | string; cmd: string;
  constructor(cmd: string, r: { code: number; error?: string; msg?: string });
}

export declare class Client {
  constructor(opts?: ConnectOptions);
  readonly tabId: string;
  readonly mode: Mode | '';
  status: ClientEvents['state'];
  limits: { maxText: number };
  tabs: ClientEvents['tabs']['list'];
  session: { sid: number; user: string; color: string; expires?: number; display?: string } | null;
  name: string;
  token: string;

  connect(): Promise<this>;
  on<K extends keyof ClientEvents>(type: K, fn: (ev: ClientEvents[K]) => void): () => void;

  join(room: string, o?: { history?: number }): Promise<JoinReply>;
  leave(room: string): Promise<{}>;
  /** through the outbox: never times out; resolves once published, rejects when refused for good */
  send(room: string, text: string, o?: { cid?: string }): Promise<SendReply>;
  dm(to: string, text: string): Promise<DMReply>;
  history(room: string, o?: { after?: number; before?: number; limit?: number; epoch?: string }): Promise<HistoryReply>;
  who(room: string): Promise<WhoReply>;
  nick(name: string, token?: string): Promise<NickReply>;
  cmd(cmd: string, body?: object, o?: { timeoutMs?: number }): Promise<any>;
  /** a CommandError too_large for text over the server's max_text (UTF-8 bytes), else null */
  checkText(text: string): CommandError | null;

  retrySend(cid: string): Promise<boolean>;
  discardSend(cid: string): Promise<boolean>;
  dmConversations(): Promise<Conversation[]>;
  dmMessages(peer: string): Promise<DM[]>;
  dmRead(peer: string): Promise<boolean>;

  info(timeoutMs?: number): Promise<any>;
  modeInfo(): ModeInfo;
  browserInfo(): BrowserInfo;
  retry(): void;
  /** --auth jwt: attach again after `detached` or `auth_error` (asking getToken if no valid token) */
  retryAuth(): void;
  wake(why?: string): void;
  close(): void;
}

export declare function connect(opts?: ConnectOptions): Promise<Client>;
