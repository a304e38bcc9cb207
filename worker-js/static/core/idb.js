// @ts-check
// IDBBackend stores the room cache in IndexedDB (available in workers and
// pages). Store "msgs" is keyed by [room, offset]; store "rooms" holds each
// room's epoch; "outbox" the messages not yet published (keyed by cid),
// "dms" the private conversations (keyed by key). Nothing touches indexedDB
// until the first use.
import { KEYS } from './cache.js';

export const IDB_VERSION = 2;
export class IDBBackend {
  constructor(name, idb = globalThis.indexedDB) {
    this.name = name;
    this.idb = idb;
    this.dbp = null;
  }

  db() {
    if (!this.dbp) {
      this.dbp = new Promise((resolve, reject) => {
        if (!this.idb) { reject(new Error('IndexedDB is not available')); return; }
        const req = this.idb.open(this.name, IDB_VERSION);
        req.onupgradeneeded = () => {
          const db = req.result;
          if (!db.objectStoreNames.contains('msgs')) db.createObjectStore('msgs', { keyPath: ['room', 'offset'] });
          if (!db.objectStoreNames.contains('rooms')) db.createObjectStore('rooms', { keyPath: 'room' });
          for (const [store, key] of Object.entries(KEYS)) if (!db.objectStoreNames.contains(store)) db.createObjectStore(store, { keyPath: key });
        };
        req.onsuccess = () => {
          const db = req.result;
          db.onversionchange = () => db.close();
          resolve(db);
        };
        req.onerror = () => reject(req.error);
        req.onblocked = () => reject(new Error('IndexedDB open blocked'));
      });
    }
    return this.dbp;
  }

  async read(room, limit) {
    const db = await this.db();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(['rooms', 'msgs'], 'readonly');
      let meta = null;
      const out = [];
      tx.objectStore('rooms').get(room).onsuccess = (e) => { meta = e.target.result || null; };
      const range = IDBKeyRange.bound([room, 0], [room, Number.MAX_SAFE_INTEGER]);
      const cur = tx.objectStore('msgs').openCursor(range, 'prev');
      cur.onsuccess = (e) => {
        const c = e.target.result;
        if (c && out.length < limit) { out.push(c.value); c.continue(); }
      };
      tx.oncomplete = () => {
        if (!meta) { resolve(null); return; }
        out.reverse();
        resolve({ epoch: meta.epoch, messages: out.filter((m) => m.epoch === meta.epoch) });
      };
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('IndexedDB read aborted'));
    });
  }

  async write(room, op) {
    const db = await this.db();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(['rooms', 'msgs'], 'readwrite');
      const msgs = tx.objectStore('msgs');
      if (op.clear) msgs.delete(IDBKeyRange.bound([room, 0], [room, Number.MAX_SAFE_INTEGER]));
      else if (op.trimBelow > 1) msgs.delete(IDBKeyRange.bound([room, 0], [room, op.trimBelow], false, true));
      tx.objectStore('rooms').put({ room, epoch: op.epoch, ts: Date.now() });
      for (const m of op.add || []) msgs.put(m);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('IndexedDB write aborted'));
    });
  }

  /** @param {string} store */
  async getAll(store) {
    const db = await this.db();
    return new Promise((resolve, reject) => {
      const req = db.transaction(store, 'readonly').objectStore(store).getAll();
      req.onsuccess = () => resolve(req.result || []);
      req.onerror = () => reject(req.error);
    });
  }

  /** @param {string} store @param {any} v */
  async put(store, v) { return this.tx(store, (s) => s.put(v)); }

  /** @param {string} store @param {string} key */
  async del(store, key) { return this.tx(store, (s) => s.delete(key)); }

  /** @param {string} store @param {(s: IDBObjectStore) => void} fn */
  async tx(store, fn) {
    const db = await this.db();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(store, 'readwrite');
      fn(tx.objectStore(store));
      tx.oncomplete = () => resolve(undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('IndexedDB write aborted'));
    });
  }

  async clearAll() {
    const db = await this.db();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(['rooms', 'msgs'], 'readwrite');
      tx.objectStore('rooms').clear();
      tx.objectStore('msgs').clear();
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }
}
