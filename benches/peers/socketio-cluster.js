// The seed tutorial's socket.io chat server (socket.io 4) as one node of a
// cluster: @socket.io/redis-adapter over node-redis carries every io.emit to
// the other processes. Port from PORT, Redis from REDIS_URL.
var app = require('http').createServer()
var io = require('socket.io')(app)
var { createAdapter } = require('@socket.io/redis-adapter')
var { createClient } = require('redis')
var PORT = Number(process.env.PORT || 3000)
var pub = createClient({ url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' })
var sub = pub.duplicate()
var clientCount = 0
Promise.all([pub.connect(), sub.connect()]).then(function () {
    io.adapter(createAdapter(pub, sub))
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
    console.error("socket.io cluster chat listening on " + PORT)
})
