// @ts-check
// Leader-tab fallback, for browsers without SharedWorker (Chrome for Android
// before 148, Samsung Internet, some embedded browsers). The tabs of one
// origin elect a leader with a Web Lock; the leader runs the Hub (one socket)
// and relays over a BroadcastChannel. When the leader goes, the lock passes
// to the next tab, which starts a new Hub and announces itself; every tab
// then says hello again with its rooms and offsets, so nothing is lost.
import { LEADER_LOCK, BUS_NAME } from './version.js';

export class LeaderLink {
  /**
   * @param {{tabId: string, onMessage: (m: any) => void, makeHub: () => any, locks?: any, BC?: any, onLeader?: (hub: any) => void}} o
   */
  constructor({ tabId, onMessage, makeHub, locks = globalThis.navigator && globalThis.navigator.locks, BC = globalThis.BroadcastChannel, onLeader = () => {} }) {
    this.tabId = tabId;
    this.onMessage = onMessage;
    this.makeHub = makeHub;
    this.locks = locks;
    this.BC = BC;
    this.onLeader = onLeader;
    this.hub = null;
    this.remotes = new Map();
    this.local = { post: (m) => queueMicrotask(() => this.onMessage(clone(m))) };
  }

  static supported(locks = globalThis.navigator && globalThis.navigator.locks, BC = globalThis.BroadcastChannel) {
    return !!(locks && typeof locks.request === 'function' && typeof BC === 'function');
  }

  start() {
    this.bc = new this.BC(BUS_NAME);
    this.bc.onmessage = (e) => this.onBus(e.data);
    this.locks.request(LEADER_LOCK, () => new Promise((resolve) => {
      this.release = resolve;
      this.becomeLeader();
    })).catch(() => {});
  }

  get isLeader() { return !!this.hub; }

  becomeLeader() {
    this.hub = this.makeHub();
    this.bc.postMessage({ dir: 'down', to: '*', op: 'leader', hub: this.hub.id });
    this.onLeader(this.hub);
  }

  post(m) {
    if (this.hub) {
      const msg = clone(m);
      queueMicrotask(() => this.hub.handle(this.local, msg));
    } else {
      this.bc.postMessage({ ...m, dir: 'up' });
    }
  }

  onBus(d) {
    if (!d || typeof d !== 'object') return;
    if (d.dir === 'up') {
      if (this.hub && typeof d.tab === 'string') this.hub.handle(this.remote(d.tab), d);
      return;
    }
    if (d.dir === 'down' && (d.to === this.tabId || d.to === '*')) this.onMessage(d);
  }

  remote(tabId) {
    let r = this.remotes.get(tabId);
    if (!r) {
      r = { post: (m) => { try { this.bc.postMessage({ ...m, dir: 'down', to: tabId }); } catch { /* closed */ } } };
      this.remotes.set(tabId, r);
    }
    return r;
  }

  close() {
    if (this.hub) this.hub.stop();
    if (this.release) this.release();
    if (this.bc) this.bc.close();
  }
}

function clone(m) {
  return typeof structuredClone === 'function' ? structuredClone(m) : JSON.parse(JSON.stringify(m));
}
