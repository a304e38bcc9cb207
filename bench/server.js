// A plain socket.io 4.8 chat server, written the way a team would write one,
// for bench/compare.sh: imload's load generator (--protocol socketio) runs the
// same workloads against it and against `imload serve`.
//
//   node bench/server.js [--port N] [--host 127.0.0.1]
//
// Port 0 (the default) picks a free port. The first stdout line is
// "listening on http://HOST:PORT" once it accepts connections. SIGTERM and
// SIGINT close it cleanly.
//
// One process, no cluster, no adapter, default options except the WebSocket
// transport only. Clients connect to
// ws://HOST:PORT/socket.io/?EIO=4&transport=websocket (namespace "/").
//
// Events (all with an ack):
//   join    {room, user}       -> joins the room;  ack {ok: true, members}
//   message {room, text, ts}   -> ack {ok: true, seq}; broadcast "message"
//                                 {room, text, ts, from, seq} to the whole
//                                 room, sender included (seq: 1, 2, ... per
//                                 room); ack {ok: false, error: "not_member"}
//                                 when the socket is not in the room
//   dm      {to, text}         -> "dm" {from, to, text} to every socket of
//                                 user `to`; ack {ok: true, sessions: n}, or
//                                 {ok: false, error: "user_offline"}
// GET /stats: {physical_connections, messages_in, messages_out, dms_in,
// dms_out, uptime_seconds}; messages_out counts deliveries (the room's size
// at each broadcast).
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const opts = { port: 0, host: "127.0.0.1" };
  for (let i = 0; i < argv.length; i++) {
    let [name, value] = argv[i].split("=", 2);
    if (value === undefined && (name === "--port" || name === "--host")) {
      value = argv[++i];
    }
    switch (name) {
      case "--port":
        opts.port = Number(value);
        if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
          fail(`bad --port ${value}`);
        }
        break;
      case "--host":
        if (!value) fail("--host needs a value");
        opts.host = value;
        break;
      case "-h":
      case "--help":
        process.stdout.write("usage: node server.js [--port N] [--host 127.0.0.1]\n");
        process.exit(0);
        break;
      default:
        fail(`unknown argument ${argv[i]}`);
    }
  }
  return opts;
}

function fail(msg) {
  process.stderr.write(`server.js: ${msg}\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const started = Date.now();

const stats = { messages_in: 0, messages_out: 0, dms_in: 0, dms_out: 0 };

const httpServer = http.createServer((req, res) => {
  // socket.io answers /socket.io/ itself; everything else comes here.
  const path = req.url.split("?", 1)[0];
  if (req.method === "GET" && path === "/stats") {
    const body = JSON.stringify({
      physical_connections: io.engine.clientsCount,
      messages_in: stats.messages_in,
      messages_out: stats.messages_out,
      dms_in: stats.dms_in,
      dms_out: stats.dms_out,
      uptime_seconds: (Date.now() - started) / 1000,
    });
    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
    res.end(body);
    return;
  }
  res.writeHead(404, { "Content-Type": "text/plain" });
  res.end("not found\n");
});

const io = new Server(httpServer, { transports: ["websocket"] });

const seqs = new Map(); // room -> last sequence number
const users = new Map(); // user name -> Set of sockets

function isObject(v) {
  return v !== null && typeof v === "object";
}

function forget(socket) {
  const user = socket.data.user;
  if (user === undefined) return;
  const set = users.get(user);
  if (!set) return;
  set.delete(socket);
  if (set.size === 0) users.delete(user);
}

io.on("connection", (socket) => {
  socket.on("join", (p, ack) => {
    if (typeof ack !== "function") return;
    if (!isObject(p) || typeof p.room !== "string" || p.room === "" || typeof p.user !== "string" || p.user === "") {
      ack({ ok: false, error: "bad_request" });
      return;
    }
    if (socket.data.user !== p.user) {
      forget(socket);
      socket.data.user = p.user;
      let set = users.get(p.user);
      if (!set) {
        set = new Set();
        users.set(p.user, set);
      }
      set.add(socket);
    }
    socket.join(p.room);
    const room = io.sockets.adapter.rooms.get(p.room);
    ack({ ok: true, members: room ? room.size : 0 });
  });

  socket.on("message", (p, ack) => {
    if (typeof ack !== "function") return;
    if (!isObject(p) || typeof p.room !== "string" || typeof p.text !== "string") {
      ack({ ok: false, error: "bad_request" });
      return;
    }
    if (!socket.rooms.has(p.room)) {
      ack({ ok: false, error: "not_member" });
      return;
    }
    stats.messages_in++;
    const seq = (seqs.get(p.room) || 0) + 1;
    seqs.set(p.room, seq);
    stats.messages_out += io.sockets.adapter.rooms.get(p.room).size;
    io.to(p.room).emit("message", { room: p.room, text: p.text, ts: p.ts, from: socket.data.user, seq });
    ack({ ok: true, seq });
  });

  socket.on("dm", (p, ack) => {
    if (typeof ack !== "function") return;
    if (!isObject(p) || typeof p.to !== "string" || typeof p.text !== "string") {
      ack({ ok: false, error: "bad_request" });
      return;
    }
    stats.dms_in++;
    const set = users.get(p.to);
    if (!set || set.size === 0) {
      ack({ ok: false, error: "user_offline" });
      return;
    }
    const msg = { from: socket.data.user, to: p.to, text: p.text };
    for (const s of set) s.emit("dm", msg);
    stats.dms_out += set.size;
    ack({ ok: true, sessions: set.size });
  });

  socket.on("disconnect", () => forget(socket));
});

httpServer.on("error", (err) => fail(err.message));

httpServer.listen(opts.port, opts.host, () => {
  const { port } = httpServer.address();
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  process.stdout.write(`listening on http://${host}:${port}\n`);
});

let closing = false;
function shutdown() {
  if (closing) return;
  closing = true;
  // Closes every client and the HTTP server.
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
