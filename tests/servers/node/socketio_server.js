// A Socket.IO v4 server (the `socket.io` package) for wsherd's Socket.IO tests.
// Clients connect straight to /socket.io/?EIO=4&transport=websocket (polling
// stays enabled, as by default). In the namespaces "/" and "/chat":
//   echo (with an ack)    -> the ack is called with the same arguments
//   echo (without an ack) -> socket.emit("echo", ...args)
//   broadcast             -> nsp.emit("broadcast", ...args), to every client of
//                            the namespace (the sender too)
//   subscribe {count, rateHz} -> `tick` events {seq, sent_ms} to this socket,
//                            seq from 1, sent_ms = Date.now(), rateHz a second,
//                            count of them (a steady schedule)
// With --auth TOKEN a connection whose auth.token is not TOKEN is refused
// (middleware error "unauthorized", in both namespaces).
// Prints its port on stdout and exits by itself after LIFETIME seconds.
//
//     node socketio_server.js [LIFETIME] [--port P] [--ping-interval MS]
//                             [--ping-timeout MS] [--auth TOKEN]
"use strict";
const http = require("http");
const { Server } = require("socket.io");

function options(argv) {
  const o = { lifetime: 60, port: 0, pingInterval: 25000, pingTimeout: 20000, auth: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--port") o.port = Number(value());
    else if (a === "--ping-interval") o.pingInterval = Number(value());
    else if (a === "--ping-timeout") o.pingTimeout = Number(value());
    else if (a === "--auth") o.auth = value();
    else if (!a.startsWith("--")) o.lifetime = Number(a);
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

const opt = options(process.argv.slice(2));
const httpServer = http.createServer();
const io = new Server(httpServer, {
  pingInterval: opt.pingInterval,
  pingTimeout: opt.pingTimeout,
});

function serve(nsp) {
  if (opt.auth !== null) {
    nsp.use((socket, next) => {
      const auth = socket.handshake.auth || {};
      next(auth.token === opt.auth ? undefined : new Error("unauthorized"));
    });
  }
  nsp.on("connection", (socket) => {
    socket.on("echo", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      if (ack) ack(...args);
      else socket.emit("echo", ...args);
    });
    socket.on("broadcast", (...args) => {
      if (typeof args[args.length - 1] === "function") args.pop();
      nsp.emit("broadcast", ...args);
    });
    socket.on("subscribe", (payload) => {
      const count = Number((payload && payload.count) || 0);
      const rateHz = Number((payload && payload.rateHz) || 1);
      const start = Date.now();
      let seq = 0;
      const next = () => {
        if (seq >= count || socket.disconnected) return;
        seq += 1;
        socket.emit("tick", { seq, sent_ms: Date.now() });
        // seq+1 is due at start + seq/rateHz, whatever this send took.
        setTimeout(next, Math.max(0, start + (seq * 1000) / rateHz - Date.now()));
      };
      next();
    });
  });
}
serve(io.of("/"));
serve(io.of("/chat"));

httpServer.listen(opt.port, "127.0.0.1", () => {
  console.log(httpServer.address().port);
});
setTimeout(() => process.exit(0), opt.lifetime * 1000);
