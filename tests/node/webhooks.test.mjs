// Outbound webhooks, checked by the reference verifier: a real receiver on
// 127.0.0.1 gets the hub's deliveries and verifies each one with the npm
// package `standardwebhooks` (Standard Webhooks 1.0), as a backend would.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { startServer, api, publishEvent, getAllEvents, waitFor, uid } from './harness.mjs';

/** A receiver on 127.0.0.1 that records every request and answers 204. */
async function startReceiver() {
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/hooks/statushub`;
  return { received, url, close: () => new Promise((r) => server.close(r)) };
}

test('deliveries verify with the standardwebhooks reference library', async (t) => {
  const hub = await startServer();
  t.after(() => hub.stop());
  const receiver = await startReceiver();
  t.after(() => receiver.close());
  const account = uid('acct');

  const created = await api(hub, 'PUT', `/v1/accounts/${account}/webhooks/orders`, {
    body: { url: receiver.url, events: ['status_sync', 'order.*'] },
  });
  assert.equal(created.status, 201, created.text);
  const secret = created.body.secret;
  assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);

  const sync = await api(hub, 'POST', `/v1/accounts/${account}/credential-tests`, {
    body: { provider: 'stripe', userId: 'u1', success: true },
  });
  assert.equal(sync.status, 201, sync.text);
  assert.deepEqual(sync.body.servicesNotified, ['orders']);
  await publishEvent(hub, account, 'order.placed', { total: 42 });
  await publishEvent(hub, account, 'unrelated', {});

  await waitFor(() => receiver.received.length >= 2, { timeout: 15_000, message: 'two deliveries' });
  const events = await getAllEvents(hub, account);
  const wh = new Webhook(secret);
  receiver.received.forEach((delivery, i) => {
    // The reference verifier checks the signature and the timestamp's age.
    const payload = wh.verify(delivery.body, delivery.headers);
    assert.deepEqual(payload, events[i], 'the body is the event envelope');
    assert.equal(delivery.headers['webhook-id'], events[i].id);
    assert.equal(delivery.headers['content-type'], 'application/json');
    assert.match(delivery.headers['user-agent'], /statushub/);
  });
  assert.deepEqual(receiver.received.map((d) => JSON.parse(d.body).event), ['status_sync', 'order.placed']);
  assert.deepEqual(JSON.parse(receiver.received[0].body).data.servicesNotified, ['orders']);

  // A tampered body, or another secret, does not verify.
  const first = receiver.received[0];
  assert.throws(() => wh.verify(first.body.replace('stripe', 'strip3'), first.headers), WebhookVerificationError);
  assert.throws(
    () => new Webhook('whsec_' + Buffer.from('another secret of 24 bytes').toString('base64')).verify(first.body, first.headers),
    WebhookVerificationError,
  );

  // The test event verifies too.
  const queued = await api(hub, 'POST', `/v1/accounts/${account}/webhooks/orders/test`);
  assert.equal(queued.status, 202, queued.text);
  await waitFor(() => receiver.received.length >= 3, { timeout: 15_000, message: 'the test delivery' });
  const test = wh.verify(receiver.received[2].body, receiver.received[2].headers);
  assert.equal(test.event, 'webhook.test');
});
