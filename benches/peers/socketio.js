// The seed tutorial's socket.io chat server (socket.io 4), port from PORT.
// With REDIS_URL set it is one node of a cluster: @socket.io/redis-adapter
// over node-redis carries every io.emit to the other processes.
var app = require('http').createServer()
var io = require('socket.io')(app)
var PORT = Number(process.env.PORT || 3000)
var clientCount = 0

function serve() {
    app.listen(PORT, "127.0.0.1")
    io.on('connection', function (socket) {
        clientCount++
        socket.nickname = 'user' + clientCount
        io.emit('enter', socket.nickname + " comes in")
        socket.on('message', function (str) {
            io.emit('message', socket.nickname + ':' + str)
        })
        socket.on("disconnect", function () {
            io.emit('leave', socket.nickname + " left")
        })
    })
    console.error("socket.io chat listening on " + PORT + (process.env.REDIS_URL ? " (cluster)" : ""))
}

if (process.env.REDIS_URL) {
    var { createAdapter } = require('@socket.io/redis-adapter')
    var { createClient } = require('redis')
    var pub = createClient({ url: process.env.REDIS_URL })
    var sub = pub.duplicate()
    Promise.all([pub.connect(), sub.connect()]).then(function () {
        io.adapter(createAdapter(pub, sub))
        serve()
    })
} else {
    serve()
}
