// @ts-check
// worker.js: the SharedWorker of imload (an ES module). It owns this
// browser's one WebSocket and runs the Hub: a logical session per tab,
// commands relayed, pushes fanned out, heartbeats, the reconnect ladder,
// the IndexedDB cache, the outbox and the private conversations. Tabs start it with
//   new SharedWorker('/worker.js?v=1.4', {type: 'module', name: WORKER_NAME})
// and the name carries the protocol version (core/version.js). When the
// last tab has been gone for the grace (graceMs, a few seconds: a reload
// comes back within it), the hub closes the socket and the worker ends.
import { Hub } from './core/hub.js';
import { IDBBackend } from './core/idb.js';
import { DB_NAME, MODES } from './core/version.js';

const scope = /** @type {SharedWorkerGlobalScope} */ (/** @type {unknown} */ (self));

const hub = new Hub({
  mode: MODES.shared,
  WebSocket: globalThis.WebSocket,
  fetch: scope.fetch.bind(scope),
  locks: scope.navigator && scope.navigator.locks,
  cacheBackend: typeof indexedDB === 'object' ? new IDBBackend(DB_NAME) : null,
  base: new URL('./', import.meta.url).href,
  log: (...a) => console.debug('[imload worker]', ...a),
  onIdle: () => scope.close(),
});
/** @type {any} */ (scope).imloadHub = hub; // for debugging in DevTools

scope.addEventListener('connect', (e) => {
  const port = e.ports[0];
  const ep = { post: (/** @type {any} */ m) => port.postMessage(m) };
  port.onmessage = (ev) => hub.handle(ep, ev.data);
  port.start();
});

// a browser that comes back online retries at once instead of waiting
scope.addEventListener('online', () => hub.conn.wake('online'));
