// worker.js: the SharedWorker of imload (an ES module). It owns this
// browser's one WebSocket and runs the Hub: a logical session per tab,
// commands relayed, pushes fanned out, heartbeats, the reconnect ladder,
// the IndexedDB cache. Tabs start it with
//   new SharedWorker('/worker.js?v=1.1', {type: 'module', name: WORKER_NAME})
// and the name carries the protocol version (core/version.js).
import { Hub } from './core/hub.js';
import { IDBBackend } from './core/idb.js';
import { DB_NAME, MODES } from './core/version.js';

const hub = new Hub({
  mode: MODES.shared,
  WebSocket: self.WebSocket,
  fetch: self.fetch.bind(self),
  locks: self.navigator && self.navigator.locks,
  cacheBackend: typeof indexedDB === 'object' ? new IDBBackend(DB_NAME) : null,
  base: new URL('./', import.meta.url).href,
  log: (...a) => console.debug('[imload worker]', ...a),
});
self.imloadHub = hub; // for debugging in DevTools

self.addEventListener('connect', (e) => {
  const port = e.ports[0];
  const ep = { post: (m) => port.postMessage(m) };
  port.onmessage = (ev) => hub.handle(ep, ev.data);
  port.start();
});

// a browser that comes back online retries at once instead of waiting
self.addEventListener('online', () => hub.conn.retryNow());
