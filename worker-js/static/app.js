// The demo chat page: the seed's chat room (section 4), done well. Every
// piece of user data goes into the page with textContent, never innerHTML.
import { Client } from './client.js';
import { checkName, validName } from './core/names.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const DEFAULT_ROOMS = ['lobby', 'Jay', 'Tse'];
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;

// The token of each name this browser used, so that the name can be taken
// back after the page was closed: the server keeps it reserved to its token
// for a while (docs/protocol.md, "Names and tokens"). At most 20 names.
const TOKENS_KEY = 'imload.tokens';
function savedTokens() { try { return JSON.parse(localStorage.getItem(TOKENS_KEY)) || {}; } catch { return {}; } }
function savedToken(name) { return savedTokens()[name] || ''; }
function saveToken(name, token) {
  if (!name || !token) return;
  try {
    const t = savedTokens();
    delete t[name];
    t[name] = token;
    const names = Object.keys(t);
    for (const n of names.slice(0, Math.max(0, names.length - 20))) delete t[n];
    localStorage.setItem(TOKENS_KEY, JSON.stringify(t));
  } catch { /* no storage: names are not taken back after a reload */ }
}

const num = (k) => (params.has(k) && Number.isFinite(Number(params.get(k))) ? Number(params.get(k)) : undefined);
const config = {};
for (const [k, p] of [['flushMs', 'flush'], ['flushMax', 'flushmax'], ['historyN', 'history'], ['triesPerAddr', 'tries'],
  ['refetches', 'refetches'], ['baseMs', 'backoff'], ['maxMs', 'backoffmax'], ['pingMs', 'hb'], ['pongTimeoutMs', 'pong']]) {
  const v = num(p);
  if (v !== undefined) config[k] = v;
}

const state = {
  client: null,
  current: '',               // room on screen
  rooms: new Map(),          // room -> {joined, log: <ul>, unread, offsets: Set of offsets shown, divider: <li>|null, meta: join reply}
  me: { user: '', color: '' },
  counts: { shown: 0, dups: 0 }, // messages shown, and duplicates not shown again
  lastInfo: null,            // the hub's last info() answer (pollStats)
};
window.imloadApp = state; // for the browser tests and DevTools

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function roomState(room) {
  let r = state.rooms.get(room);
  if (!r) {
    const log = el('ul', 'log');
    log.dataset.room = room;
    log.hidden = true;
    $('messages').appendChild(log);
    r = { joined: false, log, unread: 0, offsets: new Set(), divider: null };
    state.rooms.set(room, r);
  }
  return r;
}

function fmtTime(ts) {
  const d = new Date(ts || Date.now());
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function stickToBottom(fn) {
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  fn();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function messageItem(m, { dm = false } = {}) {
  const li = el('li', 'msg');
  if (m.from === state.me.user) li.classList.add('mine');
  if (dm) li.classList.add('dm');
  if (m.room) li.dataset.room = m.room;
  if (m.offset) li.dataset.offset = String(m.offset);
  li.dataset.from = m.from || '';
  const meta = el('div', 'meta');
  const who = el('button', 'user', m.from || '?');
  who.type = 'button';
  who.style.color = safeColor(m.color);
  who.dataset.user = m.from || '';
  meta.appendChild(who);
  if (dm) meta.appendChild(el('span', 'tag', m.from === state.me.user ? `private to ${m.to}` : 'private'));
  meta.appendChild(el('time', '', fmtTime(m.ts)));
  const bubble = el('div', 'bubble', m.text);
  bubble.style.setProperty('--c', safeColor(m.color));
  li.append(meta, bubble);
  return li;
}

function safeColor(c) { return /^#[0-9a-fA-F]{6}$/.test(c || '') ? c : '#64748b'; }

function addMessages(room, msgs, { reset = false } = {}) {
  const r = roomState(room);
  stickToBottom(() => {
    if (reset) { r.log.textContent = ''; r.offsets.clear(); r.divider = null; }
    for (const m of msgs) {
      if (r.offsets.has(m.offset)) { state.counts.dups++; continue; } // never shown twice
      r.offsets.add(m.offset);
      r.log.appendChild(messageItem(m));
      state.counts.shown++;
    }
  });
  if (room !== state.current && msgs.length && !reset) { r.unread += msgs.length; renderRooms(); }
}

function system(room, text) {
  const r = roomState(room);
  stickToBottom(() => r.log.appendChild(el('li', 'sys', text)));
}

function divider(room) {
  const r = roomState(room);
  if (r.divider) r.divider.remove();
  if (!r.log.querySelector('.msg')) return;
  r.divider = el('li', 'divider', 'earlier messages above');
  stickToBottom(() => r.log.appendChild(r.divider));
}

function show(room) {
  state.current = room;
  for (const [name, r] of state.rooms) r.log.hidden = name !== room;
  const r = room ? roomState(room) : null;
  if (r) r.unread = 0;
  $('empty').hidden = !!room;
  $('room-title').textContent = room === '@private' ? 'Private messages' : room ? `#${room}` : 'No room';
  $('input').placeholder = room && room !== '@private' ? `Message #${room}` : 'Join a room first';
  $('people-room').textContent = room ? `#${room}` : 'the room';
  $('messages').scrollTop = $('messages').scrollHeight;
  renderRooms();
  refreshPeople();
}

function renderRooms() {
  const names = [...new Set([...DEFAULT_ROOMS, ...state.rooms.keys()])].filter((n) => !n.startsWith('@'));
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
}

async function join(room) {
  if (!ROOM_RE.test(room)) { $('composer-error').textContent = 'Room names are 1–64 letters, digits, _ - .'; return; }
  const r = roomState(room);
  show(room);
  try {
    const res = await state.client.join(room);
    r.joined = true;
    divider(room);
    $('room-meta').textContent = metaText(res);
    r.meta = res;
    renderRooms();
    refreshPeople();
    updateUrl();
  } catch (e) {
    system(room, `Could not join: ${e.message}`);
  }
}

function metaText(res) {
  const parts = [];
  if (res.cached) parts.push(`${res.cached} from cache`);
  if (res.fetched) parts.push(`${res.fetched} fetched`);
  return parts.join(' · ');
}

async function leave(room) {
  const r = roomState(room);
  r.joined = false;
  try { await state.client.leave(room); } catch (e) { system(room, `Leave failed: ${e.message}`); }
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
  if (!room || !state.client || !(state.rooms.get(room) || {}).joined) { ul.textContent = ''; return; }
  try {
    const w = await state.client.who(room);
    if (room !== state.current) return;
    ul.textContent = '';
    for (const u of w.users || []) {
      const li = el('li');
      const b = el('button', '', u.name + (u.name === state.me.user ? ' (you)' : ''));
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
  } catch { /* offline: keep the last list */ }
}

async function sendInput() {
  const input = $('input');
  const text = input.value.trim();
  $('composer-error').textContent = '';
  if (!text) return;
  let m = text.match(/^@([\p{L}0-9_.-]+)\s+([\s\S]+)$/u);
  if (m && !validName(m[1])) m = null;
  input.value = '';
  try {
    if (m) {
      const res = await state.client.dm(m[1], m[2]);
      addDM({ from: state.me.user, to: m[1], color: state.me.color, text: m[2], ts: res.ts });
    } else {
      if (!state.current || !(state.rooms.get(state.current) || {}).joined) { throw new Error('join a room first'); }
      await state.client.send(state.current, text);
    }
  } catch (e) {
    input.value = input.value || text;
    let why = e.message;
    if (e.error === 'name_required') why = 'pick a name first';
    else if (e.error === 'user_offline') why = `${m && m[1]} is not online`;
    else if (e.name === 'TimeoutError') why = 'no answer from the server (it will be retried after reconnecting)';
    $('composer-error').textContent = `Not sent: ${why}`;
  }
}

function addDM(d) {
  if (!state.current) show('@private');
  const r = roomState(state.current);
  stickToBottom(() => r.log.appendChild(messageItem(d, { dm: true })));
}

function setMe(s) {
  state.me = { user: s.user || '', color: s.color || '' };
  $('me').hidden = !s.user;
  $('name-form').hidden = !!s.user;
  $('me-name').textContent = s.user || '';
  $('me-dot').style.background = safeColor(s.color);
  $('me-sid').textContent = s.sid ? `session ${s.sid}` : '';
  if (s.user) { $('name-error').textContent = ''; updateUrl(); }
}

const MODE_LABEL = { shared_worker: 'shared worker', leader_tab: 'leader tab', direct: 'direct' };

function renderMode() {
  const c = state.client;
  if (!c) return;
  const info = c.modeInfo();
  $('mode').textContent = MODE_LABEL[info.mode] || info.mode || '…';
  $('mode').dataset.mode = info.mode || '';
  let note = '';
  if (info.mode === 'leader_tab') note = info.leader ? '(this tab leads)' : '(another tab leads)';
  if (info.fallback) note += (note ? ' ' : '') + `— ${info.fallback}`;
  $('mode-note').textContent = note;
  const tabs = c.tabs || [];
  $('tab-count').textContent = String(tabs.length);
  const ul = $('tab-list');
  ul.textContent = '';
  for (const t of tabs) {
    const li = el('li', t.tab === c.tabId ? 'self' : '', `session ${t.sid}${t.user ? ` · ${t.user}` : ''}${t.tab === c.tabId ? ' (this tab)' : ''}`);
    ul.appendChild(li);
  }
}

function renderConn(s) {
  const pill = $('conn');
  pill.dataset.state = s.state;
  let text = s.state;
  if (s.state === 'open') text = 'connected';
  else if (s.state === 'connecting') text = 'connecting…';
  else if (s.state === 'waiting') {
    const secs = Math.max(0, Math.round((s.retryAt - Date.now()) / 1000));
    text = s.goaway ? `server restarting — back in ${secs}s` : `reconnecting in ${secs}s (try ${s.attempt})`;
  } else if (s.state === 'offline') {
    text = s.kicked ? 'offline — too many connections for this name (close other tabs or devices, then retry)' : 'offline — gave up';
  }
  pill.textContent = text;
  $('retry').hidden = !(s.state === 'offline' || s.state === 'waiting');
}

async function pollStats() {
  try {
    const res = await fetch('stats', { cache: 'no-store' });
    if (res.ok) {
      const st = await res.json();
      $('phys').textContent = String(st.physical_connections);
      $('logi').textContent = String(st.logical_sessions);
      $('phys-unit').textContent = st.physical_connections === 1 ? 'physical connection' : 'physical connections';
      $('logi-unit').textContent = st.logical_sessions === 1 ? 'logical session' : 'logical sessions';
      const by = st.physical_by_mode || {};
      $('bymode').textContent = Object.entries(by).filter(([, n]) => n).map(([k, n]) => `${MODE_LABEL[k] || k}: ${n}`).join(' · ');
    }
  } catch { /* server away */ }
  try {
    const info = await state.client.info(1500);
    const s = info.stats || {};
    $('sync').textContent = `${s.msgsFromServer} msgs from server · ${s.msgsFromCache} from cache`;
    state.lastInfo = info;
  } catch { /* hub busy */ }
}

function wire(c) {
  c.on('message', (m) => addMessages(m.room, [m]));
  c.on('history', (h) => addMessages(h.room, h.messages, { reset: h.reset }));
  c.on('dm', (d) => addDM(d));
  c.on('presence', (p) => {
    system(p.room, p.kind === 'join' ? `${p.user} joined` : `${p.user} left`);
    if (p.room === state.current) refreshPeople();
  });
  c.on('notice', (n) => { if (state.current) system(state.current, n.text); });
  c.on('state', (s) => { renderConn(s); if (s.state === 'open') setTimeout(refreshPeople, 300); });
  c.on('session', (s) => { setMe(s); saveToken(s.user, c.token); });
  c.on('name_refused', (e) => {
    $('name-error').textContent = `The name "${e.name}" is taken. Pick another one.`;
    $('name-input').value = e.name;
    setMe({ user: '', color: '' });
  });
  c.on('tabs', () => renderMode());
  c.on('mode', () => renderMode());
  c.on('left', (e) => { const r = roomState(e.room); r.joined = false; system(e.room, 'You are no longer in this room.'); renderRooms(); });
}

async function main() {
  renderRooms();
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); sendInput(); });
  $('name-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('name-input').value.trim();
    $('name-error').textContent = '';
    const why = checkName(name);
    if (why) { $('name-error').textContent = `Names are 1–32 bytes of letters of one script, digits, _ - . (${why})`; return; }
    try { const r = await state.client.nick(name, savedToken(name)); saveToken(r.user, r.token); } catch (err) {
      $('name-error').textContent = err.error === 'name_taken' ? `The name "${name}" is taken. Pick another one.` : `Could not use that name: ${err.message}`;
    }
  });
  $('room-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const room = $('room-input').value.trim();
    if (room) { $('room-input').value = ''; join(room); }
  });
  // clicking a name starts a private message (the seed's @name)
  document.addEventListener('click', (e) => {
    const u = e.target.closest && e.target.closest('[data-user]');
    if (!u || !u.dataset.user || u.dataset.user === state.me.user) return;
    const input = $('input');
    input.value = `@${u.dataset.user} `;
    input.focus();
  });
  $('retry').addEventListener('click', () => state.client && state.client.retry());
  setInterval(() => { if (state.client && state.client.status.state === 'waiting') renderConn(state.client.status); }, 1000);

  const name = params.get('name') || '';
  const c = new Client({ mode: params.get('mode') || '', name: validName(name) ? name : '', token: validName(name) ? savedToken(name) : '', config, title: document.title });
  state.client = c;
  wire(c);
  await c.connect();
  renderMode();
  const rooms = (params.get('room') || '').split(',').map((s) => s.trim()).filter((s) => ROOM_RE.test(s));
  for (const room of rooms) await join(room);
  if (!rooms.length) show('');
  pollStats();
  setInterval(pollStats, 2000);
  setInterval(refreshPeople, 10000);
  document.body.dataset.ready = '1';
}

main().catch((e) => {
  console.error(e);
  $('conn').textContent = `error: ${e.message}`;
});
