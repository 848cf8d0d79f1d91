// Node `ws` peer. MODE=echo | shout | chat, PORT=..., DEFLATE=1 for
// `perMessageDeflate: true` (ws's own defaults: a context per connection,
// messages from 1 KiB compressed).
//   echo:  send every message back
//   shout: String(message).toUpperCase() + "!!!"
//   chat:  the seed's chat room (userN, enter/message/leave JSON to everyone)
import { WebSocketServer } from 'ws';

const mode = process.env.MODE || 'echo';
const port = Number(process.env.PORT || 3000);
const perMessageDeflate = process.env.DEFLATE === '1';
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate });
let clientCount = 0;

function broadcast(str) {
  for (const c of wss.clients) c.send(str);
}

wss.on('connection', (ws) => {
  if (mode === 'chat') {
    clientCount++;
    ws.nickname = 'user' + clientCount;
    broadcast(JSON.stringify({ type: 'enter', data: ws.nickname + ' comes in' }));
    ws.on('close', () => broadcast(JSON.stringify({ type: 'leave', data: ws.nickname + ' left' })));
  }
  ws.on('message', (data, isBinary) => {
    if (mode === 'echo') ws.send(data, { binary: isBinary });
    else if (mode === 'shout') ws.send(String(data).toUpperCase() + '!!!');
    else broadcast(JSON.stringify({ type: 'message', data: ws.nickname + ':' + String(data) }));
  });
});
wss.on('listening', () => console.error(`node ws (${mode}) listening on ${port}`));
