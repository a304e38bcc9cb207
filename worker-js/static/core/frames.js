// @ts-check
// Frames of the wire protocol (docs/protocol.md §1): JSON objects, one per
// line, several per WebSocket message.

// decodeMessage splits one WebSocket text message into frames. Lines that
// are empty are skipped; a line that is not a JSON object is reported in
// errors and the rest is still decoded.
export function decodeMessage(text) {
  const frames = [];
  const errors = [];
  for (const raw of String(text).split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') continue;
    try {
      const f = JSON.parse(line);
      if (f && typeof f === 'object' && !Array.isArray(f) && typeof f.t === 'string') frames.push(f);
      else errors.push(line);
    } catch {
      errors.push(line);
    }
  }
  return { frames, errors };
}

const enc = typeof TextEncoder === 'function' ? new TextEncoder() : null;
export function byteLength(s) {
  if (enc) return enc.encode(s).length;
  return unescape(encodeURIComponent(s)).length;
}

// encodeBatches merges frames into as few messages as the limits allow
// (maxFrames frames and maxBytes bytes per message; 0 = no limit). A single
// frame larger than maxBytes still goes alone, like mux.Batch.
export function encodeBatches(frames, maxFrames = 0, maxBytes = 0) {
  const out = [];
  let cur = [];
  let size = 0;
  for (const f of frames) {
    const line = typeof f === 'string' ? f : JSON.stringify(f);
    const n = maxBytes > 0 ? byteLength(line) : line.length;
    const fits = cur.length === 0 ||
      ((maxFrames <= 0 || cur.length < maxFrames) && (maxBytes <= 0 || size + 1 + n <= maxBytes));
    if (!fits) {
      out.push(cur.join('\n'));
      cur = [];
      size = 0;
    }
    size += (cur.length ? 1 : 0) + n;
    cur.push(line);
  }
  if (cur.length) out.push(cur.join('\n'));
  return out;
}
