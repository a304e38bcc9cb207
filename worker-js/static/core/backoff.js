// @ts-check
// The reconnect ladder of the seed (section 3.1.3): retry the same address
// with exponential backoff and jitter a few times, then switch to the next
// address of the list from /lbs, then fetch /lbs again, then give up and
// let the application decide (the tabs show it, with a retry button).

export const DEFAULT_LADDER = Object.freeze({
  triesPerAddr: 3,   // attempts on one address before switching
  refetches: 2,      // /lbs fetches after the list is exhausted, then give up
  baseMs: 500,       // first delay
  maxMs: 10000,      // cap of a delay
  factor: 2,         // growth per attempt
  jitter: 0.5,       // +-50%: the delay is d*(1-j) .. d*(1+j), capped
});

export function backoffDelay(attempt, o = DEFAULT_LADDER, random = Math.random) {
  const n = Math.max(1, attempt);
  const d = Math.min(o.maxMs, o.baseMs * Math.pow(o.factor, n - 1));
  const j = Math.max(0, Math.min(1, o.jitter));
  const v = d * (1 - j) + d * 2 * j * random();
  return Math.max(0, Math.round(Math.min(o.maxMs, v)));
}

// The ladder's steps, named as the load generator names them in result.json
// (reports.StepRetry, StepSwitch, StepRefetch, StepGiveUp in Go).
export const STEP = Object.freeze({
  retry: 'retry',     // the same address again
  switch: 'switch',   // the next address of the list
  refetch: 'refetch', // fetch /lbs, then setAddrs()
  giveUp: 'give_up',  // stop; reset() to start over
});

// Ladder decides what to do after each failed attempt (loadgen/ladder.go
// does the same; both are tested against loadgen/testdata/ladder.json).
// Steps:
//   {action:'retry',   addr, delayMs, attempt}  same address again
//   {action:'switch',  addr, delayMs, attempt}  next address of the list
//   {action:'refetch', addr, delayMs, attempt}  fetch /lbs, then setAddrs()
//   {action:'give_up', attempt}                 stop; reset() to start over
export class Ladder {
  constructor(opts = {}, random = Math.random) {
    this.o = { ...DEFAULT_LADDER, ...clean(opts) };
    this.random = random;
    this.addrs = [];
    this.reset();
  }

  configure(opts) { this.o = { ...this.o, ...clean(opts) }; }

  // reset starts over (after a success, or a user's "retry").
  reset() {
    this.index = 0;
    this.tries = 0;      // failures on the current address
    this.attempt = 0;    // failures since the last success
    this.refetched = 0;
  }

  setAddrs(addrs) {
    const list = (addrs || []).filter((a) => typeof a === 'string' && a);
    if (list.length) this.addrs = list;
    this.index = 0;
    this.tries = 0;
  }

  current() { return this.addrs[this.index] || this.addrs[0] || ''; }

  success() { this.reset(); }

  // next is the step after a failed attempt. Every step but give_up waits
  // backoffDelay(attempt): the attempts since the last success, whatever the
  // step, so that a server that stays away is tried less and less often.
  next() {
    this.attempt++;
    this.tries++;
    let action;
    if (this.tries < this.o.triesPerAddr) {
      action = STEP.retry;
    } else if (this.index + 1 < this.addrs.length) {
      this.index++;
      this.tries = 0;
      action = STEP.switch;
    } else if (this.refetched < this.o.refetches) {
      this.refetched++;
      this.index = 0;
      this.tries = 0;
      action = STEP.refetch;
    } else {
      return { action: STEP.giveUp, attempt: this.attempt };
    }
    return { action, addr: this.current(), delayMs: backoffDelay(this.attempt, this.o, this.random), attempt: this.attempt };
  }
}

function clean(o) {
  const out = {};
  for (const [k, v] of Object.entries(o || {})) {
    if (k in DEFAULT_LADDER && typeof v === 'number' && Number.isFinite(v) && v >= 0) out[k] = v;
  }
  return out;
}
