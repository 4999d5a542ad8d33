// Snapshot on connect, and resume with `auth.since`: the missed events, in
// order, exactly once, then live events.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer,
  connectTab,
  publishPhoneTest,
  publishEvent,
  getStatus,
  uid,
  range,
} from './harness.mjs';

test('a fresh tab gets a snapshot with the latest phone state and seq', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const account = uid('acct');
  const phone = uid('phone');
  const other = uid('phone');

  await publishPhoneTest(server, account, { phoneNumberId: phone, isActive: false });
  await publishPhoneTest(server, account, { phoneNumberId: other, isActive: false, qualityRating: 'RED' });
  const last = await publishPhoneTest(server, account, { phoneNumberId: phone, isActive: true });

  const tab = await connectTab(server, { account });
  const { data: snap, meta } = await tab.waitForEvent('snapshot');
  assert.equal(meta, undefined, 'snapshot has a single argument');
  assert.equal(snap.accountId, account);
  assert.equal(snap.seq, last.ack.seq, 'snapshot seq is the latest seq');
  assert.ok(snap.phones?.[phone], `snapshot.phones has ${phone}: ${JSON.stringify(snap.phones)}`);
  assert.equal(snap.phones[phone].status, 'ACTIVE', 'the latest test of the phone wins');
  assert.equal(snap.phones[other]?.status, 'INACTIVE');
  for (const key of ['credentials', 'monitors', 'jobs']) {
    assert.equal(typeof snap[key], 'object', `snapshot.${key} is an object`);
  }
  assert.notEqual(snap.reset, true, 'a plain connect is not a reset');

  // The HTTP snapshot says the same thing.
  const status = await getStatus(server, account);
  assert.equal(status.accountId, account);
  assert.equal(status.seq, snap.seq);
  assert.equal(status.phones[phone].status, 'ACTIVE');

  // Exactly one snapshot, and it came first: a live event now arrives after it.
  const live = await publishEvent(server, account, 'test.live', {});
  await tab.waitForEvent((e) => e.meta?.id === live.id);
  assert.deepEqual(tab.events.map((e) => e.event), ['snapshot', 'test.live']);
});

for (const transports of [['websocket'], ['polling']]) {
  test(`resume over ${transports[0]}: since=lastSeen replays exactly the missed events, then live`, async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const account = uid('acct');

    // First tab: sees three events, then goes away.
    const first = await connectTab(server, { account, transports });
    await first.waitForEvent('snapshot');
    const seen = [];
    for (let n = 1; n <= 3; n++) seen.push(await publishEvent(server, account, 'test.step', { n }));
    await first.waitForCount('test.step', 3);
    assert.deepEqual(first.seqs(), seen.map((a) => a.seq));
    const lastSeen = first.lastSeq();
    first.close();

    // Missed while away: a mix of event kinds.
    const missed = [];
    for (let n = 4; n <= 8; n++) {
      missed.push(
        n % 2 === 0
          ? (await publishPhoneTest(server, account, { isActive: n % 4 === 0 })).ack
          : await publishEvent(server, account, 'test.step', { n }),
      );
    }
    assert.deepEqual(missed.map((a) => a.seq), range(lastSeen + 1, lastSeen + missed.length));

    const second = await connectTab(server, { account, transports, since: lastSeen });
    await second.waitForCount((e) => e.meta, missed.length);
    assert.deepEqual(
      second.sequenced().map((e) => [e.meta.seq, e.meta.id]),
      missed.map((a) => [a.seq, a.id]),
      'exactly the missed events, in order',
    );

    // Then live events, still in order, nothing repeated.
    const live = await publishEvent(server, account, 'test.live', {});
    assert.equal(live.seq, lastSeen + missed.length + 1);
    await second.waitForEvent((e) => e.meta?.id === live.id);
    assert.deepEqual(second.seqs(), range(lastSeen + 1, live.seq), 'contiguous, no duplicates');
    assert.equal(second.named('snapshot').length, 0, 'a resumed tab needs no snapshot');
    for (const e of second.sequenced()) assert.equal(e.meta.accountId, account);

    // Resuming with nothing missed: no replay, no snapshot, just live events.
    const third = await connectTab(server, { account, transports, since: live.seq });
    const next = await publishEvent(server, account, 'test.live', { again: true });
    await third.waitForEvent((e) => e.meta?.id === next.id);
    assert.deepEqual(third.events.map((e) => [e.event, e.meta?.seq]), [['test.live', next.seq]]);
  });
}
