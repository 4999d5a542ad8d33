// scripts/cluster.sh, the compose topology on loopback, run for real: a
// redis-server, three hub nodes of the built binary on it, nginx in front with
// the committed proxy rules. Checks its own smoke (--check), then what only the
// proxy can get wrong: a Socket.IO long-polling session stays on one node, a
// WebSocket upgrade passes through, SSE frames (snapshot, then live events) are
// not held back; and that Ctrl-C stops every process the script started.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { REPO_ROOT, requireBinary, requireProgram } from './lib.mjs';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'cluster.sh');

function prerequisites() {
  requireBinary();
  requireProgram('redis-server', 'redis-server');
  requireProgram('nginx', 'nginx');
  requireProgram('curl', 'curl');
}

/** Starts scripts/cluster.sh; resolves with what it printed once it says it is up. */
function startCluster(args) {
  const child = spawn('bash', [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (chunk) => { err += chunk; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const up = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cluster.sh not up within 60 s:\n${out}\n${err}`)), 60_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('Ctrl-C stops everything.')) { clearTimeout(timer); resolve(); }
    });
    exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`cluster.sh exited (${code}):\n${out}\n${err}`)); });
  });
  return { child, exited, up, output: () => out, errors: () => err };
}

function parseOutput(out) {
  const nodes = [...out.matchAll(/^ {2}node \d+ +(http:\/\/\S+)/gm)].map((m) => m[1]);
  const proxy = /^ {2}proxy +(http:\/\/\S+)/m.exec(out)?.[1];
  const redis = /^ {2}redis +redis:\/\/127\.0\.0\.1:(\d+)/m.exec(out)?.[1];
  const creds = /^export TOKEN=(\S+) API_KEY=(\S+)$/m.exec(out);
  const dir = /\(files in (\S+)\)/.exec(out)?.[1];
  return { nodes, proxy, redisPort: Number(redis), token: creds?.[1], apiKey: creds?.[2], dir };
}

function portOpen(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** One Engine.IO long-polling request through the proxy. */
async function poll(base, sid, body) {
  const url = `${base}/socket.io/?EIO=4&transport=polling${sid ? `&sid=${sid}` : ''}`;
  const res = await fetch(url, body === undefined ? {} : { method: 'POST', body, headers: { 'Content-Type': 'text/plain;charset=UTF-8' } });
  const text = await res.text();
  assert.equal(res.status, 200, `polling request ${body === undefined ? 'GET' : 'POST'} answered ${res.status}: ${text}`);
  return text;
}

test('cluster.sh --check: an event published on node 1 is read from nodes 2 and 3 and through nginx', { timeout: 120_000 }, async () => {
  prerequisites();
  const run = startCluster(['--check', '--nodes', '3']);
  run.up.catch(() => {}); // --check never prints the Ctrl-C line; its exit status is the verdict
  const { code } = await run.exited;
  const out = run.output();
  assert.equal(code, 0, `cluster.sh --check failed:\n${out}\n${run.errors()}`);
  for (const reader of ['node 2', 'node 3', 'the proxy']) assert.match(out, new RegExp(`check: ${reader} serves event seq \\d+`));
  assert.match(out, /cluster check passed/);
  const { nodes, redisPort } = parseOutput(out);
  for (const port of [redisPort, ...nodes.map((u) => Number(new URL(u).port))]) {
    assert.equal(await portOpen(port), false, `port ${port} is closed after --check`);
  }
});

test('through nginx: sticky long-polling, WebSocket upgrade, unbuffered SSE; Ctrl-C stops everything', { timeout: 120_000 }, async (t) => {
  prerequisites();
  const run = startCluster(['--nodes', '3']);
  t.after(() => run.child.kill('SIGKILL'));
  await run.up;
  const { nodes, proxy, redisPort, token, apiKey, dir } = parseOutput(run.output());
  assert.equal(nodes.length, 3, `three nodes listed:\n${run.output()}`);
  assert.ok(proxy && token && apiKey && redisPort && dir, `URLs, credentials and dir printed:\n${run.output()}`);

  await t.test('a Socket.IO long-polling session completes through the proxy (every request reaches its node)', async () => {
    const open = await poll(proxy);
    assert.match(open, /^0\{/, `Engine.IO open packet: ${open}`);
    const { sid } = JSON.parse(open.slice(1));
    assert.equal(await poll(proxy, sid, `40${JSON.stringify({ token })}`), 'ok');
    // The connect ack, then the snapshot; the hub may ping first (answer it). With the three
    // nodes round-robin instead of sticky, these requests would meet "Session ID unknown".
    const seen = [];
    for (let i = 0; i < 10 && !seen.some((p) => p.startsWith('42["snapshot"')); i++) {
      for (const packet of (await poll(proxy, sid)).split('\x1e')) {
        seen.push(packet);
        if (packet === '2') assert.equal(await poll(proxy, sid, '3'), 'ok');
      }
    }
    assert.ok(seen.some((p) => p.startsWith('40{')), `a connect ack: ${seen.join(' | ')}`);
    assert.ok(seen.some((p) => p.startsWith('42["snapshot"')), `a snapshot: ${seen.join(' | ')}`);
    assert.equal(await poll(proxy, sid, '1'), 'ok'); // close the session
  });

  await t.test('a WebSocket upgrade on /ws passes through and carries the snapshot', async () => {
    const frame = await new Promise((resolve, reject) => {
      const req = http.request(`${proxy}/ws?token=${token}`, {
        headers: {
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        },
        timeout: 10_000,
      });
      req.on('response', (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
      req.on('timeout', () => req.destroy(new Error('no upgrade within 10 s')));
      req.on('error', reject);
      req.on('upgrade', (res, socket, head) => {
        assert.equal(res.statusCode, 101);
        let buf = head;
        const take = () => {
          // One unmasked server frame: FIN+opcode, length (7 bits, or 16/64-bit extended).
          if (buf.length < 2) return;
          let len = buf[1] & 0x7f;
          let offset = 2;
          if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); offset = 4; }
          if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); offset = 10; }
          if (buf.length < offset + len) return;
          socket.destroy();
          resolve(buf.subarray(offset, offset + len).toString('utf8'));
        };
        socket.on('data', (chunk) => { buf = Buffer.concat([buf, chunk]); take(); });
        take();
      });
      req.end();
    });
    assert.equal(JSON.parse(frame).type, 'snapshot', `first frame: ${frame.slice(0, 200)}`);
  });

  await t.test('an SSE stream through the proxy delivers the snapshot, then live events, while it stays open', async () => {
    const controller = new AbortController();
    const res = await fetch(`${proxy}/v1/accounts/demo/stream`, {
      headers: { Authorization: `Bearer ${token}` },
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = res.body.getReader();
    let text = '';
    const readUntil = async (re, ms) => {
      const deadline = Date.now() + ms;
      while (!re.test(text) && Date.now() < deadline) {
        const { value, done } = await Promise.race([reader.read(), delay(deadline - Date.now()).then(() => ({ done: true }))]);
        if (done) break;
        text += Buffer.from(value).toString('utf8');
      }
      return re.test(text);
    };
    try {
      assert.ok(await readUntil(/event: ?snapshot/, 5_000), `the snapshot frame: ${text.slice(0, 200)}`);
      // The stream's node is nginx's choice, and without cross-node fan-out only events
      // published through that node arrive live: publish one through every node.
      const nonce = randomBytes(6).toString('hex');
      for (const node of nodes) {
        const pub = await fetch(`${node}/v1/accounts/demo/events`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ event: 'proxy.check', data: { nonce } }),
        });
        assert.equal(pub.status, 201, `publish through ${node}: ${await pub.text()}`);
      }
      assert.ok(await readUntil(new RegExp(nonce), 5_000), `a live event through the proxy within 5 s: ${text.slice(-300)}`);
    } finally {
      controller.abort();
    }
  });

  // Ctrl-C: the script's trap stops redis, the nodes and nginx by PID and removes its dir.
  run.child.kill('SIGINT');
  const { code } = await run.exited;
  assert.equal(code, 130, `cluster.sh exits 130 on Ctrl-C:\n${run.errors()}`);
  for (const port of [redisPort, new URL(proxy).port, ...nodes.map((u) => new URL(u).port)].map(Number)) {
    assert.equal(await portOpen(port), false, `port ${port} is closed after Ctrl-C`);
  }
  assert.equal(existsSync(dir), false, `${dir} is removed`);
});
