// The seed tutorial's socket.io chat server (socket.io 4), port from PORT.
// With REDIS_URL set it is one node of a cluster: @socket.io/redis-adapter
// over node-redis carries every io.emit to the other processes. With
// REDIS_CLUSTER_URLS (seed URLs, comma-separated) instead it is a node over a
// Redis Cluster: the adapter's sharded mode (SPUBLISH/SSUBSCRIBE, 8.2+) over
// node-redis's cluster client.
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
    console.error("socket.io chat listening on " + PORT + (process.env.REDIS_URL || process.env.REDIS_CLUSTER_URLS ? " (cluster)" : ""))
}

if (process.env.REDIS_CLUSTER_URLS) {
    var { createShardedAdapter } = require('@socket.io/redis-adapter')
    var { createCluster } = require('redis')
    var rootNodes = process.env.REDIS_CLUSTER_URLS.split(',').map(function (url) { return { url: url } })
    var pubc = createCluster({ rootNodes: rootNodes })
    var subc = pubc.duplicate()
    Promise.all([pubc.connect(), subc.connect()]).then(function () {
        io.adapter(createShardedAdapter(pubc, subc))
        serve()
    })
} else if (process.env.REDIS_URL) {
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
