// Smoke test of bench/server.js: starts it on a free port, speaks raw
// Engine.IO 4 / Socket.IO 5 packets over WebSocket (the `ws` package that
// socket.io itself depends on; no socket.io-client), checks the contract that
// imload's --protocol socketio is written against, and stops it with SIGTERM.
//
//   cd bench && npm ci && node smoke.js
"use strict";

const { spawn } = require("child_process");
const assert = require("assert");
const path = require("path");
const WebSocket = require("ws");

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, "server.js"), "--port", "0"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        const m = /^listening on http:\/\/([^ ]+)$/.exec(line);
        if (!m) reject(new Error(`unexpected first line: ${line}`));
        else resolve({ child, base: `http://${m[1]}`, ws: `ws://${m[1]}` });
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  });
}

// A minimal Socket.IO client over one WebSocket.
class Client {
  constructor(url) {
    this.ws = new WebSocket(`${url}/socket.io/?EIO=4&transport=websocket`);
    this.nextAck = 1;
    this.acks = new Map();
    this.events = [];
    this.waiters = [];
    this.pings = 0;
    this.ready = new Promise((resolve, reject) => {
      this.ws.on("error", reject);
      this.ws.on("message", (data) => {
        const s = data.toString();
        if (s[0] === "0") {
          const open = JSON.parse(s.slice(1));
          this.open = open;
          this.ws.send("40"); // connect to namespace "/"
        } else if (s === "2") {
          this.pings++;
          this.ws.send("3");
        } else if (s.startsWith("40")) {
          resolve();
        } else if (s.startsWith("42")) {
          const [name, payload] = JSON.parse(s.slice(2));
          this.events.push({ name, payload });
          this.waiters = this.waiters.filter((w) => !w());
        } else if (s.startsWith("43")) {
          const m = /^43(\d+)(.*)$/.exec(s);
          const cb = this.acks.get(Number(m[1]));
          this.acks.delete(Number(m[1]));
          cb(JSON.parse(m[2])[0]);
        } else if (s.startsWith("44")) {
          reject(new Error(`connect error: ${s}`));
        }
      });
    });
  }
  emit(name, payload) {
    const id = this.nextAck++;
    return new Promise((resolve) => {
      this.acks.set(id, resolve);
      this.ws.send(`42${id}${JSON.stringify([name, payload])}`);
    });
  }
  waitEvents(name, n) {
    return new Promise((resolve) => {
      const check = () => {
        const got = this.events.filter((e) => e.name === name);
        if (got.length >= n) {
          resolve(got);
          return true;
        }
        return false;
      };
      if (!check()) this.waiters.push(check);
    });
  }
  close() {
    this.ws.close();
  }
}

async function getJSON(url) {
  const res = await fetch(url);
  assert.strictEqual(res.status, 200);
  return res.json();
}

async function main() {
  const srv = await startServer();
  try {
    const a = new Client(srv.ws);
    const b = new Client(srv.ws);
    const c = new Client(srv.ws);
    await Promise.all([a.ready, b.ready, c.ready]);
    assert.strictEqual(a.open.pingInterval, 25000);
    assert.strictEqual(a.open.pingTimeout, 20000);
    assert.deepStrictEqual(a.open.upgrades, []);

    assert.deepStrictEqual(await a.emit("join", { room: "r1", user: "alice" }), { ok: true, members: 1 });
    assert.deepStrictEqual(await b.emit("join", { room: "r1", user: "bob" }), { ok: true, members: 2 });
    assert.deepStrictEqual(await c.emit("join", { room: "r2", user: "bob" }), { ok: true, members: 1 });

    // Room messages: seq per room from 1, sender included, outsiders refused.
    assert.deepStrictEqual(await a.emit("message", { room: "r1", text: "hi", ts: 123 }), { ok: true, seq: 1 });
    assert.deepStrictEqual(await b.emit("message", { room: "r1", text: "yo", ts: 124 }), { ok: true, seq: 2 });
    assert.deepStrictEqual(await c.emit("message", { room: "r2", text: "r2", ts: 125 }), { ok: true, seq: 1 });
    assert.deepStrictEqual(await c.emit("message", { room: "r1", text: "no", ts: 1 }), { ok: false, error: "not_member" });
    for (const cl of [a, b]) {
      const got = (await cl.waitEvents("message", 2)).map((e) => e.payload);
      assert.deepStrictEqual(got, [
        { room: "r1", text: "hi", ts: 123, from: "alice", seq: 1 },
        { room: "r1", text: "yo", ts: 124, from: "bob", seq: 2 },
      ]);
    }

    // DMs go to every socket of the user.
    assert.deepStrictEqual(await a.emit("dm", { to: "bob", text: "psst" }), { ok: true, sessions: 2 });
    for (const cl of [b, c]) {
      const got = await cl.waitEvents("dm", 1);
      assert.deepStrictEqual(got[0].payload, { from: "alice", to: "bob", text: "psst" });
    }
    assert.deepStrictEqual(await a.emit("dm", { to: "carol", text: "?" }), { ok: false, error: "user_offline" });

    let st = await getJSON(`${srv.base}/stats`);
    assert.strictEqual(st.physical_connections, 3);
    assert.strictEqual(st.messages_in, 3);
    assert.strictEqual(st.messages_out, 5); // 2 + 2 + 1
    assert.strictEqual(st.dms_out, 2);

    // A closed socket is forgotten as bob's session.
    c.close();
    await new Promise((r) => setTimeout(r, 200));
    assert.deepStrictEqual(await a.emit("dm", { to: "bob", text: "again" }), { ok: true, sessions: 1 });
    st = await getJSON(`${srv.base}/stats`);
    assert.strictEqual(st.physical_connections, 2);
    assert.strictEqual((await fetch(`${srv.base}/nope`)).status, 404);

    a.close();
    b.close();
  } finally {
    const exited = new Promise((r) => srv.child.once("exit", (code, sig) => r({ code, sig })));
    srv.child.kill("SIGTERM");
    const { code, sig } = await exited;
    assert.strictEqual(code, 0, `server exit code ${code} signal ${sig}`);
  }
  process.stdout.write("smoke ok\n");
}

main().catch((err) => {
  process.stderr.write(`smoke FAILED: ${err.stack || err}\n`);
  process.exit(1);
});
