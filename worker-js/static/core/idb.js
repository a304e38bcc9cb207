// IDBBackend stores the room cache in IndexedDB (available in workers and
// pages). Store "msgs" is keyed by [room, offset]; store "rooms" holds each
// room's epoch. Nothing touches indexedDB until the first use.
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
        const req = this.idb.open(this.name, 1);
        req.onupgradeneeded = () => {
          const db = req.result;
          if (!db.objectStoreNames.contains('msgs')) db.createObjectStore('msgs', { keyPath: ['room', 'offset'] });
          if (!db.objectStoreNames.contains('rooms')) db.createObjectStore('rooms', { keyPath: 'room' });
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
