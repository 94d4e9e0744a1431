// A Node `ws` echo server with permessage-deflate for wsherd's tests
// (tests/node_ws.rs): every message is compressed whatever its size
// (threshold 0), context kept both ways unless the client asks otherwise.
// Prints its port on stdout and exits by itself after LIFETIME seconds.
//
//     node ws_deflate.js [LIFETIME]
"use strict";
const { WebSocketServer } = require("ws");

const lifetime = Number(process.argv[2] || 60);
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  perMessageDeflate: { threshold: 0 },
});
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on("listening", () => console.log(wss.address().port));
setTimeout(() => process.exit(0), lifetime * 1000);
