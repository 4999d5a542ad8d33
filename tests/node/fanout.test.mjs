// Fan-out: every tab of an account gets each event, with the right payload and
// meta, over both Socket.IO transports; tabs of other accounts get nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer,
  connectTab,
  publishPhoneTest,
  publishEvent,
  uid,
  range,
} from './harness.mjs';

const isTimestamp = (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v));

function assertMeta(meta, ack, where) {
  assert.ok(meta, `${where}: handler got no meta argument`);
  assert.equal(meta.accountId, ack.accountId, `${where}: meta.accountId`);
  assert.equal(meta.seq, ack.seq, `${where}: meta.seq must equal the 201 answer's seq`);
  assert.equal(meta.id, ack.id, `${where}: meta.id must equal the 201 answer's id`);
  assert.ok(isTimestamp(meta.publishedAt), `${where}: meta.publishedAt is RFC 3339: ${meta.publishedAt}`);
  assert.equal(Date.parse(meta.publishedAt), Date.parse(ack.publishedAt), `${where}: meta.publishedAt`);
}

function assertPhoneStatus(data, sent, where) {
  assert.equal(data.phoneNumberId, sent.phoneNumberId, `${where}: phoneNumberId`);
  assert.equal(data.isActive, sent.isActive, `${where}: isActive`);
  assert.equal(data.status, sent.isActive ? 'ACTIVE' : 'INACTIVE', `${where}: status derived from isActive`);
  assert.equal(data.qualityRating, sent.qualityRating, `${where}: qualityRating`);
  assert.equal(data.displayPhoneNumber, sent.displayPhoneNumber, `${where}: displayPhoneNumber`);
  assert.equal(data.verifiedName, sent.verifiedName, `${where}: verifiedName`);
  assert.ok(isTimestamp(data.lastTestedAt), `${where}: lastTestedAt is a timestamp: ${data.lastTestedAt}`);
  assert.equal(Date.parse(data.lastTestedAt), Date.parse(sent.testedAt), `${where}: lastTestedAt = testedAt`);
  assert.ok(isTimestamp(data.timestamp), `${where}: timestamp is RFC 3339: ${data.timestamp}`);
}

test('tabs of one account (polling and websocket) get phone_status_changed; another account gets nothing', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const accountA = uid('acct-a');
  const accountB = uid('acct-b');

  const pollingA = await connectTab(server, { account: accountA, transports: ['polling'] });
  const websocketA = await connectTab(server, { account: accountA, transports: ['websocket'] });
  const tabB = await connectTab(server, { account: accountB, transports: ['websocket'] });
  const tabsA = [pollingA, websocketA];

  // Each tab got its own account's snapshot, never someone else's.
  for (const tab of [...tabsA, tabB]) {
    const snap = await tab.waitForEvent('snapshot');
    assert.equal(snap.data.accountId, tab === tabB ? accountB : accountA, `${tab.name}: snapshot accountId`);
  }

  const active = await publishPhoneTest(server, accountA, { isActive: true, qualityRating: 'GREEN' });
  const inactive = await publishPhoneTest(server, accountA, { isActive: false, qualityRating: 'RED' });
  assert.equal(inactive.ack.seq, active.ack.seq + 1, 'seqs of consecutive publishes are consecutive');

  for (const tab of tabsA) {
    for (const { ack, body } of [active, inactive]) {
      const got = await tab.waitForEvent((e) => e.event === 'phone_status_changed' && e.meta?.id === ack.id);
      assertMeta(got.meta, ack, tab.name);
      assertPhoneStatus(got.data, body, tab.name);
    }
  }
  // The transports really are what the tabs asked for (no silent upgrade).
  assert.equal(pollingA.transport(), 'polling');
  assert.equal(websocketA.transport(), 'websocket');

  // A marker to A proves the A tabs have drained; each phone test arrived exactly once.
  const markerA = await publishEvent(server, accountA, 'test.marker', { to: 'A' });
  for (const tab of tabsA) {
    await tab.waitForEvent((e) => e.meta?.id === markerA.id);
    assert.deepEqual(tab.seqs(), [active.ack.seq, inactive.ack.seq, markerA.seq], `${tab.name}: events in order, once`);
  }

  // A marker to B: when B's tab has it, anything of A's it could have been sent has arrived too.
  const markerB = await publishEvent(server, accountB, 'test.marker', { to: 'B' });
  const got = await tabB.waitForEvent((e) => e.meta?.id === markerB.id);
  assertMeta(got.meta, markerB, tabB.name);
  assert.deepEqual(got.data, { to: 'B' });
  assert.deepEqual(
    tabB.events.map((e) => e.event),
    ['snapshot', 'test.marker'],
    `B's tab saw nothing but its snapshot and its marker: ${tabB.describe()}`,
  );
  for (const e of tabB.sequenced()) assert.equal(e.meta.accountId, accountB);
  assert.equal(markerB.seq, 1, "account B's sequence is its own (starts at 1)");
});

test('three tabs (polling, websocket, polling→websocket) get a 50-event burst in the same order', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const account = uid('acct');

  const tabs = await Promise.all([
    connectTab(server, { account, transports: ['polling'], name: 'polling' }),
    connectTab(server, { account, transports: ['websocket'], name: 'websocket' }),
    connectTab(server, { account, transports: ['polling', 'websocket'], name: 'upgrade' }),
  ]);
  const snapshots = await Promise.all(tabs.map((tab) => tab.waitForEvent('snapshot')));
  const base = snapshots[0].data.seq;
  assert.equal(base, 0, 'fresh account starts at seq 0');

  const N = 50;
  const acks = await Promise.all(range(1, N).map((n) => publishEvent(server, account, 'test.burst', { n })));
  const expectedSeqs = range(base + 1, base + N);
  assert.deepEqual(
    acks.map((a) => a.seq).sort((x, y) => x - y),
    expectedSeqs,
    'concurrent publishes get contiguous seqs',
  );
  assert.equal(new Set(acks.map((a) => a.id)).size, N, 'ids are unique');
  const ackBySeq = new Map(acks.map((a, i) => [a.seq, { ...a, n: i + 1 }]));

  // A trailing marker: once a tab has it, the burst is fully delivered to that tab.
  const marker = await publishEvent(server, account, 'test.marker', {});
  for (const tab of tabs) await tab.waitForEvent((e) => e.meta?.id === marker.id, 20_000);

  const orders = tabs.map((tab) => {
    const burst = tab.named('test.burst');
    assert.deepEqual(
      burst.map((e) => e.meta.seq),
      expectedSeqs,
      `${tab.name}: all ${N} events in seq order, each once`,
    );
    for (const e of burst) {
      const ack = ackBySeq.get(e.meta.seq);
      assert.equal(e.meta.id, ack.id, `${tab.name}: seq ${e.meta.seq} carries the id of its 201 answer`);
      assert.equal(e.data.n, ack.n, `${tab.name}: seq ${e.meta.seq} carries its own payload`);
      assert.equal(e.meta.accountId, account);
    }
    assert.equal(tab.lastSeq(), marker.seq);
    return burst.map((e) => e.meta.id);
  });
  assert.deepEqual(orders[1], orders[0], 'websocket tab saw the same order as the polling tab');
  assert.deepEqual(orders[2], orders[0], 'upgrading tab saw the same order as the polling tab');
});
