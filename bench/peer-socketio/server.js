// Reference peer for the statushub benchmarks: what a team would write with
// plain Node and socket.io 4.8 instead of statushub. Same JWT auth (HS256,
// `account_id` claim), same `account:{id}` rooms, same publish endpoint and
// answer, but in memory only: no persistence, no resume, no snapshot state
// beyond the sequence counter. It exists to be measured against.
//
//   node server.js --listen 127.0.0.1:8090 --jwt-secret S --api-keys K1,K2
//   (or PEER_LISTEN, PEER_JWT_SECRET, PEER_API_KEYS)
//
// Prints `listening on http://HOST:PORT` once it accepts connections.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const { Server } = require('socket.io');
const jwt = require('jsonwebtoken');

const MAX_BODY = 64 * 1024;
const EVENT_NAME = /^[a-z][a-z0-9_.:-]{0,63}$/;
const ACCOUNT_ID = /^[A-Za-z0-9_.@-]{1,128}$/;
const PUBLISH_PATH = /^\/v1\/accounts\/([^/]+)\/events$/;
const RESERVED = new Set(['phone_status_changed', 'status_sync', 'health_changed', 'sync_progress', 'snapshot']);

function setting(flag, env, fallback) {
  const i = process.argv.indexOf(flag);
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1];
  return process.env[env] ?? fallback;
}

const listen = setting('--listen', 'PEER_LISTEN', '127.0.0.1:8090');
const secret = setting('--jwt-secret', 'PEER_JWT_SECRET');
const apiKeys = new Set((setting('--api-keys', 'PEER_API_KEYS') ?? '').split(',').map((k) => k.trim()).filter(Boolean));
if (!secret || apiKeys.size === 0) {
  console.error('peer: --jwt-secret (PEER_JWT_SECRET) and --api-keys (PEER_API_KEYS) are required');
  process.exit(2);
}

/** Last seq per account: the only state the peer keeps. */
const heads = new Map();

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function fail(res, status, code, message) {
  sendJson(res, status, { error: { code, message } });
}

function bearer(req) {
  const header = req.headers.authorization ?? '';
  const [scheme, value] = header.split(' ');
  return scheme?.toLowerCase() === 'bearer' ? value?.trim() : undefined;
}

function publish(req, res, account) {
  if (!apiKeys.has(bearer(req))) return fail(res, 401, 'unauthorized', 'invalid API key');
  if (!ACCOUNT_ID.test(account)) return fail(res, 400, 'bad_request', 'invalid account id');
  const chunks = [];
  let size = 0;
  let refused = false;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY && !refused) {
      refused = true;
      fail(res, 413, 'too_large', `body exceeds ${MAX_BODY} bytes`);
    }
    if (!refused) chunks.push(chunk);
  });
  req.on('end', () => {
    if (refused) return;
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      return fail(res, 400, 'bad_request', `invalid JSON body: ${e.message}`);
    }
    const { event, data } = body ?? {};
    if (typeof event !== 'string' || !EVENT_NAME.test(event) || RESERVED.has(event)) {
      return fail(res, 400, 'bad_request', 'invalid event name');
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      return fail(res, 400, 'bad_request', 'data must be an object');
    }
    const seq = (heads.get(account) ?? 0) + 1;
    heads.set(account, seq);
    const meta = { accountId: account, seq, id: crypto.randomUUID(), publishedAt: new Date().toISOString() };
    io.to(`account:${account}`).emit(event, data, meta);
    sendJson(res, 201, meta);
  });
}

const httpServer = http.createServer((req, res) => {
  const url = req.url.split('?')[0];
  const match = PUBLISH_PATH.exec(url);
  if (match && req.method === 'POST') return publish(req, res, decodeURIComponent(match[1]));
  if (url === '/healthz') return sendJson(res, 200, { status: 'ok' });
  fail(res, 404, 'not_found', 'no such endpoint');
});
// Publishers keep their connections between bursts.
httpServer.keepAliveTimeout = 60_000;

const io = new Server(httpServer, { serveClient: false });

io.use((socket, next) => {
  try {
    const claims = jwt.verify(socket.handshake.auth?.token ?? '', secret, { algorithms: ['HS256'] });
    if (typeof claims.sub !== 'string' || typeof claims.exp !== 'number') throw new Error('token lacks sub or exp');
    if (typeof claims.account_id !== 'string' || !ACCOUNT_ID.test(claims.account_id)) throw new Error('invalid account_id');
    socket.data.accountId = claims.account_id;
    next();
  } catch (e) {
    next(new Error(`unauthorized: ${e.message}`));
  }
});

io.on('connection', (socket) => {
  const accountId = socket.data.accountId;
  socket.join(`account:${accountId}`);
  // The contract's first message; the peer has no state to put in it.
  socket.emit('snapshot', { accountId, seq: heads.get(accountId) ?? 0, phones: {}, credentials: {}, monitors: {}, jobs: {} });
});

const sep = listen.lastIndexOf(':');
httpServer.listen(Number(listen.slice(sep + 1)), listen.slice(0, sep), () => {
  const { address, port } = httpServer.address();
  console.log(`listening on http://${address}:${port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    io.close();
    httpServer.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
