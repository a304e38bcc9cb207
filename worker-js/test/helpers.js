// Test helpers: a manual clock and a fake WebSocket.
export class Clock {
  constructor() { this.t = 1_000_000; this.seq = 0; this.timers = new Map(); }
  now = () => this.t;
  setTimer = (fn, ms) => { const id = ++this.seq; this.timers.set(id, { fn, at: this.t + Math.max(0, ms || 0) }); return id; };
  clearTimer = (id) => { this.timers.delete(id); };
  // advance runs every timer due within ms, in time order (timers set while
  // running also run if due), letting microtasks settle between them.
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next = null;
      for (const [id, tm] of this.timers) if (tm.at <= end && (!next || tm.at < next[1].at || (tm.at === next[1].at && id < next[0]))) next = [id, tm];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
    await settle();
  }
}

export async function settle(n = 20) { for (let i = 0; i < n; i++) await Promise.resolve(); }

export function fakeWebSocket() {
  const sockets = [];
  class FakeWS {
    constructor(url) { this.url = url; this.sent = []; this.closed = null; sockets.push(this); }
    send(d) { if (this.closed) throw new Error('closed'); this.sent.push(d); }
    close(code, reason) { this.closed = { code, reason }; }
    // server side
    deliver(...frames) { this.onmessage && this.onmessage({ data: frames.map((f) => JSON.stringify(f)).join('\n') }); }
    hello(extra = {}) { this.deliver({ t: 'hello', body: { v: 1, conn: sockets.length, hb_ms: 15000, hb_timeout_ms: 45000, max_msg: 65536, max_frames: 128, ...extra } }); }
    drop(code = 1006) { this.closed = { code }; this.onclose && this.onclose({ code, reason: '' }); }
    frames() { return this.sent.flatMap((m) => m.split('\n').map((l) => JSON.parse(l))); }
    take() { const f = this.frames(); this.sent = []; return f; }
  }
  return { FakeWS, sockets };
}
