// Bun's built-in WebSocket server (uWebSockets underneath).
// MODE=echo | shout | pubsub (the seed's chat room on a Bun topic), PORT=...
// DEFLATE=1: permessage-deflate with uWebSockets' shared compressor (a
// publication compressed once for all subscribers).
const mode = process.env.MODE || "echo";
const deflate = process.env.DEFLATE === "1";
const port = Number(process.env.PORT || 3000);
let clientCount = 0;

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, server) {
    if (server.upgrade(req, { data: { nick: "" } })) return;
    return new Response("websocket only", { status: 426 });
  },
  websocket: {
    perMessageDeflate: deflate ? { compress: "shared", decompress: "shared" } : false,
    open(ws) {
      if (mode === "pubsub") {
        clientCount++;
        ws.data.nick = "user" + clientCount;
        ws.subscribe("room");
        server.publish("room", JSON.stringify({ type: "enter", data: ws.data.nick + " comes in" }));
      }
    },
    message(ws, message) {
      if (mode === "echo") ws.send(message);
      else if (mode === "shout") ws.send(String(message).toUpperCase() + "!!!");
      else server.publish("room", JSON.stringify({ type: "message", data: ws.data.nick + ":" + message }));
    },
    close(ws) {
      if (mode === "pubsub") {
        server.publish("room", JSON.stringify({ type: "leave", data: ws.data.nick + " left" }));
      }
    },
  },
});
console.error(`bun (${mode}) listening on ${server.port}`);
