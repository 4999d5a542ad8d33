// Durability: kill -9 the hub while publishes are in flight, restart it on the
// same data dir, and check that every acknowledged event survived with its seq
// and id, that seqs have no gap, and that a tab resumes across the crash.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer,
  connectTab,
  api,
  phoneTestBody,
  publishEvent,
  getAllEvents,
  waitFor,
  uid,
  range,
} from './harness.mjs';

const LOOPS = 4;
const ACKS_BEFORE_KILL = 60;

test('kill -9 mid-stream loses no acknowledged event and leaves no gap', async (t) => {
  const first = await startServer();
  t.after(() => first.stop());
  const account = uid('acct');

  const watcher = await connectTab(first, { account, transports: ['websocket'], name: 'watcher' });
  await watcher.waitForEvent('snapshot');

  // Publishers: each loop publishes back to back until the crash.
  const acked = []; // { ack, loop, n } for every 201
  const failures = []; // network errors of requests cut by the crash (never acknowledged)
  const unexpected = []; // anything else: a non-201 answer, or a network error while the hub is up
  let inFlight = 0;
  let crashed = false;
  const loop = async (i) => {
    for (let n = 0; !crashed && unexpected.length === 0; n++) {
      const phone = i % 2 === 0;
      const opts = phone
        ? { body: phoneTestBody({ phoneNumberId: `phone-${i}`, isActive: n % 2 === 0 }) }
        : { body: { event: 'test.load', data: { loop: i, n } } };
      inFlight++;
      try {
        const res = await api(first, 'POST', `/v1/accounts/${account}/${phone ? 'phone-tests' : 'events'}`, opts);
        if (res.status === 201) acked.push({ ack: res.body, loop: i, n });
        else unexpected.push(`${res.status} ${res.text}`);
      } catch (err) {
        if (crashed) failures.push(err);
        else unexpected.push(`network error while the hub was up: ${err.cause?.message ?? err.message}`);
      } finally {
        inFlight--;
      }
    }
  };
  const loops = Array.from({ length: LOOPS }, (_, i) => loop(i));

  await waitFor(
    () => {
      if (unexpected.length) throw new Error(`publish failed before the crash: ${unexpected[0]}`);
      return acked.length >= ACKS_BEFORE_KILL;
    },
    { timeout: 20_000, message: () => `${ACKS_BEFORE_KILL} acks (have ${acked.length})` },
  );
  await waitFor(() => inFlight >= 1, { message: 'a publish in flight' });
  crashed = true;
  const exit = await first.kill();
  assert.equal(exit.signal, 'SIGKILL');
  await Promise.all(loops);
  assert.deepEqual(unexpected, [], 'before the crash every publish answered 201');

  await waitFor(() => !watcher.socket.connected, { message: 'watcher notices the crash' });
  const seenBeforeCrash = watcher.sequenced();
  assert.ok(seenBeforeCrash.length > 0, 'watcher saw events before the crash');
  const S = watcher.lastSeq();
  assert.deepEqual(watcher.seqs(), range(1, S), 'live delivery before the crash was contiguous');

  // Restart on the same data dir (new port).
  const second = await startServer({ dataDir: first.dataDir, secret: first.secret, apiKeys: first.apiKeys });
  t.after(() => second.stop());
  assert.notEqual(second.url, first.url);

  const events = await getAllEvents(second, account, 0);
  const seqs = events.map((e) => e.seq);
  const max = seqs.length ? seqs[seqs.length - 1] : 0;
  assert.deepEqual(seqs, range(1, max), 'persisted seqs are 1..max with no gap and no duplicate');
  assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'persisted ids are unique');
  for (const e of events) {
    assert.equal(e.accountId, account);
    assert.ok(typeof e.event === 'string' && e.data && typeof e.data === 'object', `envelope ${JSON.stringify(e)}`);
  }

  const bySeq = new Map(events.map((e) => [e.seq, e]));
  for (const { ack, loop: i, n } of acked) {
    const stored = bySeq.get(ack.seq);
    assert.ok(stored, `acknowledged seq ${ack.seq} (loop ${i}, n ${n}) survived the crash`);
    assert.equal(stored.id, ack.id, `seq ${ack.seq} kept its id`);
    if (stored.event === 'test.load') assert.deepEqual(stored.data, { loop: i, n });
  }
  // What the watcher was shown before the crash was durable too.
  for (const e of seenBeforeCrash) {
    assert.equal(bySeq.get(e.meta.seq)?.id, e.meta.id, `seq ${e.meta.seq} seen live before the crash is stored`);
  }
  t.diagnostic(
    `acked ${acked.length}, persisted ${max}, network errors ${failures.length}, watcher at ${S}`,
  );

  // A tab that had seen S resumes against the restarted hub.
  const resumed = await connectTab(second, { account, since: S, transports: ['polling'], name: 'resumed' });
  if (max > S) await resumed.waitForCount((e) => e.meta, max - S);
  assert.deepEqual(
    resumed.sequenced().map((e) => [e.meta.seq, e.meta.id]),
    events.filter((e) => e.seq > S).map((e) => [e.seq, e.id]),
    'resume after the crash: everything after S, in order',
  );

  // Publishing continues right after the last stored seq, and reaches the resumed tab once.
  const next = await publishEvent(second, account, 'test.after-restart', {});
  assert.equal(next.seq, max + 1, 'the next publish continues at max+1');
  await resumed.waitForEvent((e) => e.meta?.id === next.id);
  assert.deepEqual(resumed.seqs(), range(S + 1, max + 1), 'exactly once, no gap');
  assert.equal(resumed.named('snapshot').length, 0);
});
