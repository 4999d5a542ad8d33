// Bad input on the publish endpoints: the right status with the error body,
// nothing published, no seq consumed, and the hub keeps serving.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer,
  connectTab,
  postPhoneTest,
  postEvent,
  getEventsPage,
  publishPhoneTest,
  publishEvent,
  phoneTestBody,
  uid,
} from './harness.mjs';

function assertError(res, status, what) {
  assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status}: ${res.text}`);
  assert.ok(res.body && typeof res.body.error === 'object', `${what}: body is {"error":{…}}: ${res.text}`);
  const { code, message } = res.body.error;
  assert.ok(typeof code === 'string' && code.length > 0, `${what}: error.code is a non-empty string: ${res.text}`);
  assert.ok(typeof message === 'string' && message.length > 0, `${what}: error.message is a non-empty string`);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, `${what}: JSON content type`);
}

test('bad publish input is refused and publishes nothing', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const account = uid('acct');
  const tab = await connectTab(server, { account });
  await tab.waitForEvent('snapshot');

  const valid = phoneTestBody();
  const cases = [
    // [what, send, expected status]
    ['malformed JSON', () => postPhoneTest(server, account, { rawBody: '{"phoneNumberId": "p1", "isActive": ' }), 400],
    ['JSON that is not an object', () => postPhoneTest(server, account, { body: [valid] }), 400],
    ['empty body', () => postPhoneTest(server, account, { rawBody: '' }), 400],
    ['missing API key', () => postPhoneTest(server, account, { body: valid, apiKey: null }), 401],
    ['wrong API key', () => postPhoneTest(server, account, { body: valid, apiKey: `${server.apiKey}x` }), 401],
    [
      'API key in the wrong scheme',
      () => postPhoneTest(server, account, { body: valid, apiKey: null, headers: { authorization: `Basic ${server.apiKey}` } }),
      401,
    ],
    ['isActive is a string', () => postPhoneTest(server, account, { body: { ...valid, isActive: 'true' } }), 400],
    ['phoneNumberId is a number', () => postPhoneTest(server, account, { body: { ...valid, phoneNumberId: 42 } }), 400],
    ['phoneNumberId missing', () => postPhoneTest(server, account, { body: { isActive: true } }), 400],
    ['isActive missing', () => postPhoneTest(server, account, { body: { phoneNumberId: 'p1' } }), 400],
    ['qualityRating is an object', () => postPhoneTest(server, account, { body: { ...valid, qualityRating: {} } }), 400],
    ['event: malformed JSON', () => postEvent(server, account, { rawBody: '{"event":' }), 400],
    ['event: missing API key', () => postEvent(server, account, { body: { event: 'x.y', data: {} }, apiKey: null }), 401],
    ['event: name is a number', () => postEvent(server, account, { body: { event: 7, data: {} } }), 400],
    ['event: name not allowed', () => postEvent(server, account, { body: { event: 'Bad Name!', data: {} } }), 400],
    ['event: name reserved (snapshot)', () => postEvent(server, account, { body: { event: 'snapshot', data: {} } }), 400],
    [
      'event: name reserved (phone_status_changed)',
      () => postEvent(server, account, { body: { event: 'phone_status_changed', data: {} } }),
      400,
    ],
    ['event: data is not an object', () => postEvent(server, account, { body: { event: 'x.y', data: 5 } }), 400],
    [
      'event: data nested past the limit',
      () => postEvent(server, account, { rawBody: `{"event":"x.y","data":${'{"a":'.repeat(40)}{}${'}'.repeat(40)}}` }),
      400,
    ],
    ['event: a number out of range', () => postEvent(server, account, { rawBody: '{"event":"x.y","data":{"n":1e400}}' }), 400],
    [
      'event: a text/plain body (what fetch sends for a bare string)',
      () => postEvent(server, account, { rawBody: '{"event":"x.y","data":{}}', headers: { 'content-type': 'text/plain;charset=UTF-8' } }),
      415,
    ],
    [
      'phone test: a form body (what curl -d sends)',
      () => postPhoneTest(server, account, { rawBody: JSON.stringify(valid), headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      415,
    ],
  ];

  const failures = [];
  for (const [what, send, status] of cases) {
    try {
      assertError(await send(), status, what);
    } catch (err) {
      failures.push(err.message);
    }
  }
  assert.deepEqual(failures, [], `bad inputs answered wrongly:\n${failures.join('\n')}`);

  // Reading events needs credentials too.
  assertError(await getEventsPage(server, account, 0, { apiKey: null }), 401, 'GET events without credentials');

  // Nothing was published ...
  const res = await getEventsPage(server, account, 0);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.accountId, account);
  assert.deepEqual(res.body.events, [], 'no bad input was published');

  // ... no seq was consumed, and the hub still works.
  const { ack } = await publishPhoneTest(server, account);
  assert.equal(ack.seq, 1, 'the first good publish gets seq 1');
  const marker = await publishEvent(server, account, 'test.marker', {});
  await tab.waitForEvent((e) => e.meta?.id === marker.id);
  assert.deepEqual(
    tab.events.map((e) => e.event),
    ['snapshot', 'phone_status_changed', 'test.marker'],
    'the tab saw only the good publishes',
  );
});
