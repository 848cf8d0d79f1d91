// The seed tutorial's socket.io chat server (socket.io 4), port from PORT.
var app = require('http').createServer()
var io = require('socket.io')(app)
var PORT = Number(process.env.PORT || 3000)
var clientCount = 0
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
console.error("socket.io chat listening on " + PORT)
