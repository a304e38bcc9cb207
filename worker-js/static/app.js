// @ts-check
// The demo chat page: the seed's chat room (section 4), done well. Every
// piece of user data goes into the page with textContent, never innerHTML.
//
// Users are shown by their display name when they have one (--auth jwt: a
// token's name claim, the wire's `display`), followed by their user name:
// "Alice Smith (alice)"; else by the user name alone. The user name stays
// visible because a display name is anyone's to choose; everything that
// says who is who (mine or not, DM peers, data-user, conversation keys)
// goes by the user name only.
import { Client, TimeoutError } from './client.js';
import { checkName, validName, checkRoom } from './core/names.js';
import { byteLength } from './core/frames.js';
import { ERR } from './core/errors.js';
import { PageLogin } from './login.js';

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const DEFAULT_ROOMS = ['lobby', 'Jay', 'Tse'];
const TITLE = document.title;

/** @param {string} k */
const num = (k) => (params.has(k) && Number.isFinite(Number(params.get(k))) ? Number(params.get(k)) : undefined);
/** @type {Record<string, number>} */
const config = {};
for (const [k, p] of [['flushMs', 'flush'], ['flushMax', 'flushmax'], ['historyN', 'history'], ['triesPerAddr', 'tries'],
  ['refetches', 'refetches'], ['baseMs', 'backoff'], ['maxMs', 'backoffmax'], ['pingMs', 'hb'], ['pongTimeoutMs', 'pong'],
  ['graceMs', 'grace'], ['slowMs', 'slow']]) {
  const v = num(p);
  if (v !== undefined) config[k] = v;
}
// how long a "X left" waits for "X joined" (a reconnect within the grace
// says nothing), and how long a command may wait for its reply
const PRESENCE_HOLD_MS = num('presencehold') ?? 5000;
const CMD_TIMEOUT_MS = num('cmdtimeout') ?? 10000;

/**
 * @typedef {{joined: boolean, log: HTMLElement, unread: number, offsets: Set<number>, divider: HTMLElement|null, meta?: any,
 *   epoch: string, older: HTMLButtonElement, empty: HTMLElement}} RoomView
 * @typedef {{peer: string, log: HTMLElement, keys: Set<string>, unread: number, color: string, display: string}} DMView
 */
const state = {
  /** @type {Client|null} */
  client: null,
  current: '',               // room on screen, or '@peer' for a conversation
  /** @type {Map<string, RoomView>} */
  rooms: new Map(),
  /** @type {Map<string, DMView>} by folded peer name */
  dms: new Map(),
  me: { user: '', color: '', display: '' },
  counts: { shown: 0, dups: 0 }, // messages shown, and duplicates not shown again
  /** @type {any} */
  lastInfo: null,            // the hub's last info() answer (pollStats)
  /** @type {Map<string, any>} room + user -> timer of a "left" line held back */
  held: new Map(),
};
/** @type {any} */ (window).imloadApp = state; // for the browser tests and DevTools

/** @param {string} tag @param {string} [cls] @param {string} [text] @returns {any} */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** @param {string} s */
const fold = (s) => String(s || '').toLowerCase();

/**
 * displayOf is the display name to show for user: display if it is a
 * non-empty string other than the user name itself, else ''.
 * @param {string} user @param {unknown} display
 */
const displayOf = (user, display) => (typeof display === 'string' && display && display !== user ? display : '');

/**
 * nameText is how a user is written in a line of text: "Alice Smith
 * (alice)", or "alice" without a display name.
 * @param {string} user @param {unknown} [display]
 */
function nameText(user, display) {
  const d = displayOf(user, display);
  return d ? `${d} (${user})` : user;
}

/**
 * showName fills e with the user as nameText writes it, the display name
 * and the user name in spans of their own (.display, .handle) and the user
 * name as e's title; textContent only.
 * @template {HTMLElement} E @param {E} e @param {string} user @param {unknown} [display] @returns {E}
 */
function showName(e, user, display) {
  const d = displayOf(user, display);
  e.textContent = '';
  if (!d) { e.textContent = user; e.removeAttribute('title'); return e; }
  e.append(el('span', 'display', d), ' ', el('span', 'handle', `(${user})`));
  e.title = user;
  return e;
}

/** @param {string} room @returns {RoomView} */
function roomState(room) {
  let r = state.rooms.get(room);
  if (!r) {
    const log = el('ul', 'log');
    log.dataset.room = room;
    log.hidden = true;
    const older = el('button', 'load-older small', 'Load older messages');
    older.type = 'button';
    older.hidden = true;
    older.addEventListener('click', () => loadOlder(room));
    const top = el('li', 'older-row');
    top.appendChild(older);
    const empty = el('li', 'empty-room', 'No messages here yet. Say hello!');
    empty.hidden = true;
    log.append(top, empty);
    $('messages').appendChild(log);
    r = { joined: false, log, unread: 0, offsets: new Set(), divider: null, epoch: '', older, empty };
    state.rooms.set(room, r);
  }
  return r;
}

/** @param {string} peer @returns {DMView} */
function dmState(peer) {
  let d = state.dms.get(fold(peer));
  if (!d) {
    const log = el('ul', 'log');
    log.dataset.dm = peer;
    log.hidden = true;
    $('messages').appendChild(log);
    d = { peer, log, keys: new Set(), unread: 0, color: '', display: '' };
    state.dms.set(fold(peer), d);
  }
  return d;
}

/** @param {number} [ts] */
function fmtTime(ts) {
  const d = new Date(ts || Date.now());
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** @param {() => void} fn */
function stickToBottom(fn) {
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  fn();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

/** @param {any} m @param {{dm?: boolean}} [o] */
function messageItem(m, { dm = false } = {}) {
  const li = el('li', 'msg');
  if (m.from === state.me.user) li.classList.add('mine');
  if (dm) li.classList.add('dm');
  if (m.room) li.dataset.room = m.room;
  if (m.offset) li.dataset.offset = String(m.offset);
  if (m.cid) li.dataset.cid = m.cid;
  li.dataset.state = 'sent';
  li.dataset.from = m.from || '';
  const meta = el('div', 'meta');
  const who = showName(el('button', 'user'), m.from || '?', m.display);
  who.type = 'button';
  who.style.color = safeColor(m.color);
  who.dataset.user = m.from || '';
  meta.appendChild(who);
  if (dm) meta.appendChild(el('span', 'tag', m.from === state.me.user ? `private to ${nameText(m.to, dmState(m.to).display)}` : 'private'));
  meta.appendChild(el('time', '', fmtTime(m.ts)));
  const bubble = el('div', 'bubble', m.text);
  bubble.style.setProperty('--c', safeColor(m.color));
  li.append(meta, bubble);
  return li;
}

/** @param {string} [c] */
function safeColor(c) { return /^#[0-9a-fA-F]{6}$/.test(c || '') ? String(c) : '#64748b'; }

/** @param {HTMLElement} log @param {string} cid @returns {HTMLElement|null} */
function byCid(log, cid) { return cid ? log.querySelector(`.msg[data-cid="${CSS.escape(cid)}"]`) : null; }

/** @param {string} room @param {any[]} msgs @param {{reset?: boolean}} [o] */
function addMessages(room, msgs, { reset = false } = {}) {
  const r = roomState(room);
  stickToBottom(() => {
    if (reset) {
      for (const x of [...r.log.querySelectorAll('.msg:not(.echo), .divider, .sys')]) x.remove();
      r.offsets.clear();
      r.divider = null;
    }
    for (const m of msgs) {
      if (m.epoch) r.epoch = m.epoch;
      if (r.offsets.has(m.offset)) { state.counts.dups++; continue; } // never shown twice
      r.offsets.add(m.offset);
      const li = messageItem(m);
      const echo = byCid(r.log, m.cid);
      if (echo) echo.replaceWith(li); // the local echo of our own message
      else r.log.appendChild(li);
      state.counts.shown++;
    }
  });
  if (room !== state.current && msgs.length && !reset) { r.unread += msgs.length; renderRooms(); }
  updateRoomChrome(room);
}

// updateRoomChrome shows "load older" when older messages may exist, and
// the empty state when a joined room has none.
/** @param {string} room */
function updateRoomChrome(room) {
  const r = roomState(room);
  const low = Math.min(...r.offsets);
  r.older.hidden = !(r.offsets.size && low > 1 && r.older.dataset.done !== String(low));
  r.empty.hidden = !(r.joined && !r.log.querySelector('.msg'));
}

async function loadOlder(room) {
  const r = roomState(room);
  const c = state.client;
  if (!c || !r.offsets.size) return;
  const low = Math.min(...r.offsets);
  r.older.disabled = true;
  try {
    const res = await c.history(room, { before: low, limit: 50 });
    if (r.epoch && res.epoch !== r.epoch) return; // the room was replaced meanwhile
    const msgs = (res.messages || []).filter((/** @type {any} */ m) => !r.offsets.has(m.offset)).sort((/** @type {any} */ a, /** @type {any} */ b) => a.offset - b.offset);
    const box = $('messages');
    const fromBottom = box.scrollHeight - box.scrollTop;
    const first = r.log.querySelector('.msg');
    for (const m of msgs) {
      r.offsets.add(m.offset);
      r.log.insertBefore(messageItem(m), first);
    }
    box.scrollTop = box.scrollHeight - fromBottom; // keep what was on screen in place
    if (!res.more || !msgs.length) r.older.dataset.done = String(Math.min(...r.offsets));
  } catch (e) {
    system(room, `Could not load older messages: ${errText(e)}`);
  } finally {
    r.older.disabled = false;
    updateRoomChrome(room);
  }
}

/** @param {string} room @param {string} text */
function system(room, text) {
  const r = roomState(room);
  stickToBottom(() => r.log.appendChild(el('li', 'sys', text)));
}

/** @param {string} room */
function divider(room) {
  const r = roomState(room);
  if (r.divider) r.divider.remove();
  if (!r.log.querySelector('.msg')) return;
  r.divider = el('li', 'divider', 'earlier messages above');
  stickToBottom(() => r.log.appendChild(/** @type {HTMLElement} */ (r.divider)));
}

/** @param {string} target a room, '@peer' for a conversation, or '' */
function show(target) {
  state.current = target;
  const peer = target.startsWith('@') ? target.slice(1) : '';
  for (const [name, r] of state.rooms) r.log.hidden = name !== target;
  for (const d of state.dms.values()) d.log.hidden = !peer || fold(d.peer) !== fold(peer);
  if (peer) {
    const d = dmState(peer);
    d.log.hidden = false;
    openConversation(d);
  } else if (target) {
    roomState(target).unread = 0;
  }
  $('empty').hidden = !!target;
  $('room-title').textContent = peer ? `@${peer}` : target ? `#${target}` : 'No room';
  $('room-meta').textContent = peer ? (displayOf(peer, dmState(peer).display) ? `private conversation with ${nameText(peer, dmState(peer).display)}` : 'private conversation') : '';
  $('input').placeholder = peer ? `Message @${peer} privately` : target ? `Message #${target}` : 'Join a room first';
  $('people-room').textContent = target && !peer ? `#${target}` : 'the room';
  $('messages').scrollTop = $('messages').scrollHeight;
  renderRooms();
  renderDMs();
  refreshPeople();
}

function renderRooms() {
  const names = [...new Set([...DEFAULT_ROOMS, ...state.rooms.keys()])];
  const ul = $('room-list');
  ul.textContent = '';
  for (const room of names) {
    const r = state.rooms.get(room);
    const joined = !!(r && r.joined);
    const li = el('li');
    const b = el('button', 'room-name' + (room === state.current ? ' current' : ''), `#${room}`);
    b.type = 'button';
    b.disabled = !joined;
    b.dataset.room = room;
    b.addEventListener('click', () => show(room));
    if (r && r.unread) b.appendChild(el('span', 'unread', String(r.unread)));
    const t = el('button', 'small' + (joined ? ' on' : ''), joined ? 'Leave' : 'Join');
    t.type = 'button';
    t.dataset.action = joined ? 'leave' : 'join';
    t.dataset.room = room;
    t.addEventListener('click', () => (joined ? leave(room) : join(room)));
    li.append(b, t);
    ul.appendChild(li);
  }
  updateTitle();
}

// ---- private conversations ------------------------------------------------

/** @type {any[]} */
let conversations = [];

/** @param {any[]} list */
function gotConversations(list) {
  conversations = list || [];
  for (const c of conversations) {
    const d = dmState(c.peer);
    d.unread = c.unread;
    d.color = c.color || d.color;
    d.display = c.display || '';
    if (state.current.startsWith('@') && fold(state.current.slice(1)) === fold(c.peer) && c.unread && document.visibilityState !== 'hidden') {
      openConversation(d);
    }
  }
  renderDMs();
}

function renderDMs() {
  const ul = $('dm-list');
  ul.textContent = '';
  $('dm-none').hidden = conversations.length > 0;
  for (const c of conversations) {
    const li = el('li');
    const b = el('button', 'dm-peer' + (fold(state.current) === fold('@' + c.peer) ? ' current' : ''));
    b.type = 'button';
    b.dataset.peer = c.peer;
    const name = showName(el('span', 'dm-name'), c.peer, c.display);
    name.style.color = safeColor(c.color);
    b.appendChild(name);
    if (c.last) b.appendChild(el('span', 'dm-last', `${c.last.from === state.me.user ? 'you: ' : ''}${c.last.text}`.slice(0, 60)));
    if (c.unread) b.appendChild(el('span', 'unread', String(c.unread)));
    b.addEventListener('click', () => show('@' + c.peer));
    li.appendChild(b);
    ul.appendChild(li);
  }
  updateTitle();
}

// openConversation fills a conversation from the hub's store (IndexedDB)
// and marks it read.
/** @param {DMView} d */
async function openConversation(d) {
  const c = state.client;
  if (!c) return;
  try {
    const msgs = await c.dmMessages(d.peer);
    addDMs(d, msgs);
    if (d.unread || msgs.length) await c.dmRead(d.peer);
  } catch { /* the hub is away: the conversation fills when it answers */ }
}

/** @param {DMView} d @param {any[]} msgs */
function addDMs(d, msgs) {
  stickToBottom(() => {
    for (const m of msgs) {
      // one message of the server's history per offset; without one (a
      // server that keeps no DMs), per id, time and sender
      const key = m.offset && m.epoch ? `o:${m.epoch}:${m.offset}` : `${m.id}:${m.ts}:${fold(m.from)}`;
      if (d.keys.has(key)) continue;
      d.keys.add(key);
      const li = messageItem(m, { dm: true });
      li.dataset.key = key;
      // in time order (a conversation read from the store may come after a live one)
      const after = [.../** @type {NodeListOf<HTMLElement>} */ (d.log.querySelectorAll('.msg'))].find((x) => Number(x.dataset.ts) > m.ts);
      li.dataset.ts = String(m.ts);
      if (after) d.log.insertBefore(li, after); else d.log.appendChild(li);
    }
  });
}

/** @param {any} m a dm event (live, our own, or from the server's history) */
function gotDM(m) {
  const d = dmState(m.peer || (m.from === state.me.user ? m.to : m.from));
  if (fold(m.from) === fold(d.peer)) d.display = typeof m.display === 'string' ? m.display : ''; // the peer's newest
  addDMs(d, [m]);
}

/** @param {{peer: string}} e the server's conversation with e.peer started again */
function dmReset(e) {
  const d = dmState(e.peer);
  for (const li of [...d.log.querySelectorAll('.msg')]) if (/** @type {HTMLElement} */ (li).dataset.key?.startsWith('o:')) li.remove();
  for (const k of [...d.keys]) if (k.startsWith('o:')) d.keys.delete(k);
}

function updateTitle() {
  let n = 0;
  for (const [name, r] of state.rooms) if (name !== state.current) n += r.unread;
  for (const c of conversations) n += c.unread;
  document.title = n ? `(${n}) ${TITLE}` : TITLE;
}

// ---- rooms ------------------------------------------------------------------

/** @param {string} room */
async function join(room) {
  const why = checkRoom(room);
  if (why) { $('composer-error').textContent = `Not a room name: ${why}`; return; }
  const r = roomState(room);
  const c = /** @type {Client} */ (state.client);
  show(room);
  try {
    const res = await c.join(room);
    r.joined = true;
    divider(room);
    $('room-meta').textContent = metaText(res);
    r.meta = res;
    renderRooms();
    refreshPeople();
    updateUrl();
  } catch (e) {
    system(room, `Could not join: ${errText(e)}`);
  }
  updateRoomChrome(room);
}

/** @param {any} res */
function metaText(res) {
  const parts = [];
  if (res.deferred && !(state.client && state.client.status.state === 'open')) parts.push('joins when connected');
  if (res.cached) parts.push(`${res.cached} from cache`);
  if (res.fetched) parts.push(`${res.fetched} fetched`);
  return parts.join(' · ');
}

/** @param {string} room */
async function leave(room) {
  const r = roomState(room);
  r.joined = false;
  try { await /** @type {Client} */ (state.client).leave(room); } catch (e) { system(room, `Leave failed: ${errText(e)}`); }
  const next = [...state.rooms].find(([, x]) => x.joined);
  if (state.current === room) show(next ? next[0] : '');
  else renderRooms();
  updateUrl();
}

function updateUrl() {
  const u = new URL(location.href);
  const joined = [...state.rooms].filter(([, r]) => r.joined).map(([n]) => n);
  if (joined.length) u.searchParams.set('room', joined.join(',')); else u.searchParams.delete('room');
  if (state.me.user) u.searchParams.set('name', state.me.user);
  history.replaceState(null, '', u);
}

async function refreshPeople() {
  const ul = $('people');
  const room = state.current;
  if (!room || room.startsWith('@') || !state.client || !(state.rooms.get(room) || {}).joined) { ul.textContent = ''; return; }
  if (state.client.status.state !== 'open') { markPeopleStale(); return; }
  try {
    const w = await state.client.who(room);
    if (room !== state.current) return;
    ul.textContent = '';
    ul.classList.remove('stale');
    $('people-stale').hidden = true;
    for (const u of w.users || []) {
      const li = el('li');
      const b = showName(el('button'), u.name, u.display);
      if (u.name === state.me.user) b.append(' (you)');
      b.type = 'button';
      b.style.color = safeColor(u.color);
      b.dataset.user = u.name;
      li.appendChild(b);
      ul.appendChild(li);
    }
    if (w.anonymous) ul.appendChild(el('li', 'muted', `+ ${w.anonymous} without a name`));
    const n = (w.users || []).length + (w.anonymous || 0);
    const meta = (state.rooms.get(room) || {}).meta;
    $('room-meta').textContent = [`${n} online`, meta ? metaText(meta) : ''].filter(Boolean).join(' · ');
  } catch { markPeopleStale(); }
}

let staleSince = 0;
// markPeopleStale says the list is what was true when we were last online.
function markPeopleStale() {
  if (!staleSince) staleSince = Date.now();
  $('people').classList.add('stale');
  $('people-stale').hidden = false;
  $('people-stale').textContent = `as of ${fmtTime(staleSince)}: offline, may be out of date`;
}

// ---- composing --------------------------------------------------------------

function maxText() { return state.client ? state.client.limits.maxText : 4096; }

// textToSend is the text the composer would send, and to whom.
function textToSend() {
  const text = $('input').value.trim();
  if (state.current.startsWith('@')) return { to: state.current.slice(1), text };
  const m = text.match(/^@(\S+)\s+([\s\S]+)$/u);
  if (m && validName(m[1])) return { to: m[1], text: m[2] };
  return { to: '', text };
}

// updateCounter shows the bytes of the message near and over the limit.
function updateCounter() {
  const n = byteLength(textToSend().text);
  const max = maxText();
  const ctr = $('counter');
  ctr.hidden = n < max * 0.8;
  ctr.textContent = `${n} / ${max} bytes`;
  ctr.classList.toggle('over', n > max);
  $('send').disabled = false;
}

/** @param {number} n */
function tooLongText(n) {
  return `Too long: ${n} bytes; a message holds at most ${maxText()} bytes (UTF-8, as the server counts). Nothing was sent: shorten it or split it.`;
}

async function sendInput() {
  const input = $('input');
  const { to, text } = textToSend();
  $('composer-error').textContent = '';
  if (!text) return;
  const c = /** @type {Client} */ (state.client);
  const n = byteLength(text);
  if (n > maxText()) { $('composer-error').textContent = tooLongText(n); return; }
  if (!to && (!state.current || !(state.rooms.get(state.current) || {}).joined)) { $('composer-error').textContent = 'Not sent: join a room first'; return; }
  if (!state.me.user) { $('composer-error').textContent = 'Not sent: pick a name first'; return; }
  input.value = '';
  updateCounter();
  if (!to) {
    // the outbox shows it (sending, sent, failed) and keeps it until sent
    c.send(state.current, text).catch(() => { /* shown by the outbox event */ });
    return;
  }
  try {
    await c.dm(to, text);
  } catch (e) {
    input.value = input.value || (state.current.startsWith('@') ? text : `@${to} ${text}`);
    updateCounter();
    let why = errText(e);
    if (e && /** @type {any} */ (e).error === ERR.userOffline) why = `${to} is not online`;
    $('composer-error').textContent = `Not sent: ${why}`;
  }
}

/** @param {any} e */
function errText(e) {
  if (e && e.error === ERR.nameRequired) return 'pick a name first';
  if (e && e.error === ERR.forbidden) return `your token does not allow this (${e.message})`;
  if (e && e.error === ERR.disconnected) return 'the server disconnected you';
  if (e instanceof TimeoutError) return 'no answer from the server';
  return (e && e.message) || String(e);
}

/** @param {any} o an outbox event */
function gotOutbox(o) {
  if (fold(o.user) !== fold(state.me.user) && state.me.user) return;
  const r = roomState(o.room);
  const mine = byCid(r.log, o.cid);
  if (o.state === 'sent' || o.state === 'discarded') {
    if (mine && mine.classList.contains('echo')) {
      if (o.state === 'discarded' || (o.offset && r.offsets.has(o.offset))) mine.remove();
      else { mine.dataset.state = 'sent'; mine.classList.remove('pending', 'failed'); }
    }
    updateRoomChrome(o.room);
    return;
  }
  if (mine && !mine.classList.contains('echo')) return; // published already
  let li = mine;
  if (!li) {
    li = messageItem({ from: state.me.user || o.user, display: state.me.user ? state.me.display : '', color: state.me.color, text: o.text, ts: o.ts, cid: o.cid, room: o.room });
    li.classList.add('echo');
    stickToBottom(() => r.log.appendChild(li));
  }
  li.dataset.state = o.state;
  li.classList.toggle('pending', o.state === 'sending');
  li.classList.toggle('failed', o.state === 'failed');
  const old = li.querySelector('.status');
  if (old) old.remove();
  const st = el('div', 'status');
  if (o.state === 'sending') {
    st.textContent = o.error ? `waiting: ${o.msg || o.error}` : (state.client && state.client.status.state === 'open' ? 'sending…' : 'will be sent when connected');
  } else if (o.state === 'failed') {
    st.appendChild(el('span', '', `not sent: ${o.msg || o.error} `));
    const again = el('button', 'link retry-send', 'Retry');
    again.type = 'button';
    again.addEventListener('click', () => state.client && state.client.retrySend(o.cid));
    const drop = el('button', 'link discard-send', 'Discard');
    drop.type = 'button';
    drop.addEventListener('click', () => state.client && state.client.discardSend(o.cid));
    st.append(again, ' ', drop);
  }
  li.appendChild(st);
  updateRoomChrome(o.room);
}

// ---- presence -----------------------------------------------------------------

// A "left" waits PRESENCE_HOLD_MS for the same user's "joined": a socket
// that dropped and resumed within the grace shows nothing to anyone.
/** @param {any} p */
function gotPresence(p) {
  const key = `${p.room}\n${fold(p.user)}`;
  if (p.kind === 'leave') {
    if (state.held.has(key)) return;
    state.held.set(key, setTimeout(() => {
      state.held.delete(key);
      system(p.room, `${nameText(p.user, p.display)} left`);
      if (p.room === state.current) refreshPeople();
    }, PRESENCE_HOLD_MS));
    return;
  }
  const t = state.held.get(key);
  if (t !== undefined) { clearTimeout(t); state.held.delete(key); return; } // back within the hold: nothing happened
  system(p.room, `${nameText(p.user, p.display)} joined`);
  if (p.room === state.current) refreshPeople();
}

// ---- you, this browser, the server ---------------------------------------

/** @param {any} s */
function setMe(s) {
  state.me = { user: s.user || '', color: s.color || '', display: s.user ? displayOf(s.user, s.display) : '' };
  $('me').hidden = !s.user;
  $('name-form').hidden = !!s.user;
  showName($('me-name'), s.user || '', s.display);
  $('me-dot').style.background = safeColor(s.color);
  $('me-sid').textContent = s.sid ? `session ${s.sid}` : '';
  if (s.user) { $('name-error').textContent = ''; updateUrl(); }
}

/** @type {Record<string, string>} */
const MODE_LABEL = { shared_worker: 'shared worker', leader_tab: 'leader tab', direct: 'direct' };

function renderMode() {
  const c = state.client;
  if (!c) return;
  const info = c.modeInfo();
  const b = c.browserInfo();
  $('mode').textContent = MODE_LABEL[info.mode] || info.mode || '…';
  $('mode').dataset.mode = info.mode || '';
  let note = '';
  if (info.mode === 'leader_tab') note = info.leader ? '(this tab leads)' : '(another tab leads)';
  if (info.fallback) note += (note ? ' ' : '') + `— ${info.fallback}`;
  $('mode-note').textContent = note;
  $('b-sockets').textContent = String(b.sockets);
  $('b-sockets-unit').textContent = info.mode === 'direct' ? (b.sockets === 1 ? 'socket (one per tab)' : 'sockets (one per tab)') : (b.sockets === 1 ? 'socket, shared by the tabs' : 'sockets');
  $('tab-count').textContent = String(b.tabs);
  const ul = $('tab-list');
  ul.textContent = '';
  if (info.mode === 'direct') { ul.appendChild(el('li', 'self', 'this tab (each direct tab has its own session)')); return; }
  for (const t of c.tabs || []) {
    const li = el('li', t.tab === c.tabId ? 'self' : '', `session ${t.sid}${t.user ? ` · ${t.user}` : ''}${t.tab === c.tabId ? ' (this tab)' : ''}`);
    ul.appendChild(li);
  }
}

/** @param {any} s */
function renderConn(s) {
  const pill = $('conn');
  pill.dataset.state = s.state;
  let text = s.state;
  const secs = Math.max(0, Math.round(((s.retryAt || 0) - Date.now()) / 1000));
  if (s.state === 'open') text = 'connected';
  else if (s.state === 'connecting') text = 'connecting…';
  else if (s.state === 'waiting') {
    text = s.goaway ? `server restarting — back in ${secs}s` : `reconnecting in ${secs}s (try ${s.attempt})`;
  } else if (s.state === 'offline') {
    text = s.kicked ? 'offline — too many connections for this name (close other tabs or devices, then retry)' : `offline — trying again in ${secs}s`;
  }
  pill.textContent = text;
  $('retry').hidden = !(s.state === 'offline' || s.state === 'waiting');
  if (s.state !== 'open') markPeopleStale();
  else staleSince = 0;
  renderMode();
}

async function pollStats() {
  try {
    const res = await fetch('stats', { cache: 'no-store' });
    if (res.ok) {
      const st = await res.json();
      $('phys').textContent = String(st.physical_connections);
      $('logi').textContent = String(st.logical_sessions);
      $('phys-unit').textContent = st.physical_connections === 1 ? 'connection (all browsers)' : 'connections (all browsers)';
      $('logi-unit').textContent = st.logical_sessions === 1 ? 'logical session' : 'logical sessions';
      const by = st.physical_by_mode || {};
      $('bymode').textContent = Object.entries(by).filter(([, n]) => n).map(([k, n]) => `${MODE_LABEL[k] || k}: ${n}`).join(' · ');
    }
  } catch { /* server away */ }
  try {
    const info = await /** @type {Client} */ (state.client).info(1500);
    const s = info.stats || {};
    $('sync').textContent = `${s.msgsFromServer} msgs from server · ${s.msgsFromCache} from cache · ${(info.outbox || []).length} in the outbox`;
    state.lastInfo = info;
  } catch { /* hub busy */ }
  renderMode();
}

/** @param {Client} c */
function wire(c) {
  c.on('message', (m) => addMessages(m.room, [m]));
  c.on('history', (h) => addMessages(h.room, h.messages, { reset: h.reset }));
  c.on('outbox', gotOutbox);
  c.on('dm', gotDM);
  c.on('dm_reset', dmReset);
  c.on('dm_conv', (e) => gotConversations(e.list));
  c.on('presence', gotPresence);
  c.on('notice', (n) => { if (state.current && !state.current.startsWith('@')) system(state.current, n.text); });
  c.on('state', (s) => { renderConn(s); if (s.state === 'open') setTimeout(refreshPeople, 300); });
  c.on('session', (s) => setMe(s));
  c.on('name_refused', (e) => {
    $('name-error').textContent = `The name "${e.name}" is taken. Pick another one.`;
    $('name-input').value = e.name;
    setMe({ user: '', color: '' });
  });
  c.on('tabs', () => renderMode());
  c.on('mode', () => renderMode());
  c.on('peers', () => renderMode());
  c.on('left', (e) => { const r = roomState(e.room); r.joined = false; system(e.room, 'You are no longer in this room.'); renderRooms(); });
  // --auth jwt (login.js)
  c.on('state', (s) => { if (s.state === 'open') login.setMode(s.auth || ''); });
  c.on('session', (s) => login.signedIn(s));
  c.on('auth_error', (e) => login.authError(e));
  c.on('detached', (e) => login.detached(e));
}

// login: the token form of --auth jwt; a token pasted when the hub is not
// waiting for one (after an auth_error or a disconnect) attaches again
const login = new PageLogin({ onToken: () => state.client && state.client.retryAuth() });

async function main() {
  renderRooms();
  renderDMs();
  $('composer').addEventListener('submit', (/** @type {Event} */ e) => { e.preventDefault(); sendInput(); });
  $('input').addEventListener('input', updateCounter);
  // a paste that would not fit is refused whole, with the reason: never cut
  $('input').addEventListener('paste', (/** @type {ClipboardEvent} */ e) => {
    const pasted = e.clipboardData ? e.clipboardData.getData('text/plain') : '';
    const input = $('input');
    const next = input.value.slice(0, input.selectionStart ?? input.value.length) + pasted + input.value.slice(input.selectionEnd ?? input.value.length);
    const n = byteLength(next.trim());
    if (n <= maxText()) return;
    e.preventDefault();
    $('composer-error').textContent = `That paste would make ${n} bytes; a message holds at most ${maxText()} bytes (UTF-8, as the server counts). Nothing was pasted.`;
  });
  $('name-form').addEventListener('submit', async (/** @type {Event} */ e) => {
    e.preventDefault();
    const name = $('name-input').value.trim();
    $('name-error').textContent = '';
    const why = checkName(name);
    if (why) { $('name-error').textContent = `Names are 1–32 bytes of letters of one script, digits, _ - . (${why})`; return; }
    try { await /** @type {Client} */ (state.client).nick(name); } catch (err) {
      $('name-error').textContent = /** @type {any} */ (err).error === ERR.nameTaken ? `The name "${name}" is taken. Pick another one.` : `Could not use that name: ${errText(err)}`;
    }
  });
  $('room-form').addEventListener('submit', (/** @type {Event} */ e) => {
    e.preventDefault();
    const room = $('room-input').value.trim();
    if (room) { $('room-input').value = ''; join(room); }
  });
  // clicking a name opens the conversation with that user
  document.addEventListener('click', (e) => {
    const u = /** @type {any} */ (e.target).closest && /** @type {any} */ (e.target).closest('[data-user]');
    if (!u || !u.dataset.user || u.dataset.user === state.me.user) return;
    show('@' + u.dataset.user);
    $('input').focus();
  });
  $('retry').addEventListener('click', () => state.client && state.client.retry());
  setInterval(() => {
    const st = state.client && state.client.status.state;
    if (st === 'waiting' || st === 'offline') renderConn(/** @type {Client} */ (state.client).status);
  }, 1000);

  const name = params.get('name') || '';
  const c = new Client({
    mode: params.get('mode') || '', name: validName(name) ? name : '', config, cmdTimeoutMs: CMD_TIMEOUT_MS, title: document.title,
    getToken: login.getToken, // only with --auth jwt: the token pasted (login.js)
    // it waits for a paste, as long as that takes (?tokentimeout=ms for a limit)
    tokenTimeoutMs: num('tokentimeout') ?? 0,
  });
  state.client = c;
  wire(c);
  await c.connect();
  renderMode();
  const rooms = (params.get('room') || '').split(',').map((s) => s.trim()).filter((s) => !checkRoom(s));
  for (const room of rooms) await join(room);
  if (!rooms.length) show('');
  c.dmConversations().then(gotConversations, () => {});
  pollStats();
  setInterval(pollStats, 2000);
  setInterval(refreshPeople, 10000);
  document.body.dataset.ready = '1';
}

main().catch((e) => {
  console.error(e);
  $('conn').textContent = `error: ${e.message}`;
});
