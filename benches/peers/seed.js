// The seed tutorial's nodejs-websocket servers, as the document gives them,
// with two changes: the port comes from PORT, and the per-message
// console.log calls are left out (they would measure the terminal, not the
// server). MODE=shout | chat.
var ws = require("nodejs-websocket")
var PORT = Number(process.env.PORT || 3000)
var mode = process.env.MODE || "shout"
var clientCount = 0
var server = ws.createServer(function (conn) {
    if (mode === "shout") {
        conn.on("text", function (str) {
            conn.sendText(str.toUpperCase() + "!!!")
        })
    } else {
        clientCount++
        conn.nickname = 'user' + clientCount
        broadcast(JSON.stringify({ type: 'enter', data: conn.nickname + " comes in" }))
        conn.on("text", function (str) {
            broadcast(JSON.stringify({ type: 'message', data: conn.nickname + ':' + str }))
        })
        conn.on("close", function (code, reason) {
            broadcast(JSON.stringify({ type: 'leave', data: conn.nickname + " left" }))
        })
    }
    conn.on("error", function (err) {})
}).listen(PORT, "127.0.0.1")
console.error("seed nodejs-websocket (" + mode + ") listening on " + PORT)
function broadcast(str) {
    server.connections.forEach(function (connection) {
        connection.sendText(str)
    })
}
