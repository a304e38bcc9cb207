// @ts-check
// FlushBuffer merges items and hands them over in batches: after intervalMs
// from the first item of a batch, or at once when maxItems are waiting (the
// seed's msgFlushTimer, section 3.2). Used for events going to a tab, so a
// busy room does not repaint on every message.
export class FlushBuffer {
  /**
   * @param {{intervalMs?: number, maxItems?: number, onFlush?: (items: any[]) => void,
   *   setTimer?: (f: () => void, ms: number) => any, clearTimer?: (id: any) => void}} o
   */
  constructor({ intervalMs = 50, maxItems = 100, onFlush, setTimer = (f, ms) => setTimeout(f, ms), clearTimer = (id) => clearTimeout(id) } = {}) {
    this.intervalMs = intervalMs;
    this.maxItems = Math.max(1, maxItems);
    this.onFlush = onFlush;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.items = [];
    this.timer = null;
    this.closed = false;
    this.flushes = 0;
  }

  get size() { return this.items.length; }

  push(item) {
    if (this.closed) return;
    this.items.push(item);
    if (this.items.length >= this.maxItems) this.flush();
    else this.arm();
  }

  // pushNow adds item and flushes everything waiting, in order (replies and
  // state changes must not wait, and must not overtake earlier events).
  pushNow(item) {
    if (this.closed) return;
    this.items.push(item);
    this.flush();
  }

  arm() {
    if (this.timer !== null || this.items.length === 0) return;
    if (this.intervalMs <= 0) { this.flush(); return; }
    this.timer = this.setTimer(() => { this.timer = null; this.flush(); }, this.intervalMs);
  }

  flush() {
    if (this.timer !== null) { this.clearTimer(this.timer); this.timer = null; }
    while (this.items.length) {
      const batch = this.items.splice(0, this.maxItems);
      this.flushes++;
      this.onFlush(batch);
    }
  }

  close() {
    if (this.timer !== null) { this.clearTimer(this.timer); this.timer = null; }
    this.items = [];
    this.closed = true;
  }
}
