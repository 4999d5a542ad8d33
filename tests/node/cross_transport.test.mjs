// One fan-out for all three transports, checked with the clients browsers and
// tools really use: socket.io-client (WebSocket and long-polling), a raw
// WebSocket (`ws`, the package engine.io-client already depends on; add it to
// devDependencies if the lockfile is rebuilt) and an SSE stream read with
// fetch. Every client of the account must see the same events with the same
// seqs in the same order as the store, and an admin may follow the account on
// every transport.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  connectTab,
  getAllEvents,
  publishEvent,
  publishPhoneTest,
  startServer,
  tokenFor,
  uid,
  waitFor,
} from './harness.mjs';

/** A raw WebSocket client of /ws recording every frame it receives. */
async function openWs(server, token, { subscribe } = {}) {
  const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/ws?token=${encodeURIComponent(token)}`);
  const frames = [];
  ws.on('message', (raw) => frames.push(JSON.parse(String(raw))));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await waitFor(() => frames.find((f) => f.type === 'snapshot'), { message: 'ws snapshot' });
  if (subscribe) {
    ws.send(JSON.stringify({ type: 'subscribe', accountId: subscribe }));
    await waitFor(() => frames.find((f) => f.type === 'snapshot' && f.data.accountId === subscribe), {
      message: `ws subscribe to ${subscribe}`,
    });
  }
  return {
    frames,
    events: (account) => frames.filter((f) => f.type === 'event' && f.accountId === account),
    close: () => ws.close(),
  };
}

/** An SSE stream of one account, parsed as it arrives. */
async function openSse(server, account, token) {
  const controller = new AbortController();
  const response = await fetch(`${server.url}/v1/accounts/${account}/stream`, {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  const events = [];
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  (async () => {
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = {};
          for (const line of block.split('\n')) {
            const i = line.indexOf(':');
            if (i <= 0) continue;
            event[line.slice(0, i)] = line.slice(i + 1).replace(/^ /, '');
          }
          if (event.event) events.push(event);
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  await waitFor(() => events.find((e) => e.event === 'snapshot'), { message: 'sse snapshot' });
  return { events, close: () => controller.abort() };
}

test('socket.io, websocket and SSE clients see the same events, seqs and order', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const account = uid('acct');
  const token = tokenFor(server, account);
  const admin = tokenFor(server, uid('ops'), { role: 'admin' });

  const sioWs = await connectTab(server, { account, transports: ['websocket'] });
  const sioPolling = await connectTab(server, { account, transports: ['polling'] });
  const sioAdmin = await connectTab(server, { token: admin, transports: ['websocket'] });
  const ack = await sioAdmin.socket.timeout(5_000).emitWithAck('subscribe', { accountId: account });
  assert.equal(ack.ok, true);
  const ws = await openWs(server, token);
  const wsAdmin = await openWs(server, admin, { subscribe: account });
  const sse = await openSse(server, account, token);
  const sseAdmin = await openSse(server, account, admin);
  t.after(() => [ws, wsAdmin, sse, sseAdmin].forEach((c) => c.close()));

  // Concurrent publishers of several kinds: the store decides the order.
  await Promise.all(
    [0, 1, 2].map(async (p) => {
      for (let i = 0; i < 10; i++) {
        if (i % 3 === 0) await publishPhoneTest(server, account, { phoneNumberId: `p${p}`, isActive: i % 2 === 0 });
        else await publishEvent(server, account, `job.p${p}`, { i });
      }
    }),
  );
  const stored = (await getAllEvents(server, account)).map((e) => [e.seq, e.id, e.event]);
  assert.equal(stored.length, 30);

  const views = {
    'socket.io websocket': () => sioWs.sequenced().map((e) => [e.meta.seq, e.meta.id, e.event]),
    'socket.io polling': () => sioPolling.sequenced().map((e) => [e.meta.seq, e.meta.id, e.event]),
    'socket.io admin': () =>
      sioAdmin.sequenced().filter((e) => e.meta.accountId === account).map((e) => [e.meta.seq, e.meta.id, e.event]),
    websocket: () => ws.events(account).map((f) => [f.seq, f.id, f.event]),
    'websocket admin': () => wsAdmin.events(account).map((f) => [f.seq, f.id, f.event]),
    sse: () => sse.events.filter((e) => e.event !== 'snapshot').map(sseTriple),
    'sse admin': () => sseAdmin.events.filter((e) => e.event !== 'snapshot').map(sseTriple),
  };
  for (const [name, view] of Object.entries(views)) {
    await waitFor(() => view().length >= stored.length, { message: () => `${name}: ${view().length} events` });
    assert.deepEqual(view(), stored, `${name} saw the store's events in the store's order`);
  }
});

function sseTriple(e) {
  const envelope = JSON.parse(e.data);
  assert.equal(e.id, String(envelope.seq), 'SSE id is the seq');
  assert.equal(e.event, envelope.event);
  return [envelope.seq, envelope.id, envelope.event];
}
