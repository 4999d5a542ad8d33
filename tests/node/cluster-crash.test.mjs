// Cluster failover: two hub processes on one Redis, tabs on both, publishes
// through both; kill -9 one node mid-burst. Every acknowledged event survives
// with its seq and id, the seqs stay gap-free, the tab on the survivor sees
// every event once in order without reconnecting, and the dead node's tab
// resumes on the survivor exactly where it stopped (no snapshot, nothing
// twice, nothing missing).
//
// Needs redis-server on STATUSHUB_TEST_REDIS_URL (default
// redis://127.0.0.1:6379); `.ci/run` starts it. Keys use a fresh prefix.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { startServer, connectTab, api, getAllEvents, waitFor, uid, range } from './harness.mjs';

const REDIS_URL = process.env.STATUSHUB_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const LOOPS_PER_NODE = 2;
const ACKS_BEFORE_KILL = 60;
const ACKS_AFTER_KILL = 40;

async function requireRedis() {
  const { hostname, port } = new URL(REDIS_URL);
  await new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port || 6379) });
    socket.once('connect', () => {
      socket.end();
      resolve();
    });
    socket.once('error', (err) =>
      reject(
        new Error(
          `no Redis at ${REDIS_URL} (${err.message}): install and start redis-server ` +
            '(apt-get install -y redis-server; redis-server --daemonize yes), or set STATUSHUB_TEST_REDIS_URL',
        ),
      ),
    );
  });
}

test('kill -9 of one node mid-burst: nothing acknowledged lost, tabs resume exactly on the other node', async (t) => {
  await requireRedis();
  const shared = {
    secret: `secret-${randomBytes(16).toString('hex')}`,
    apiKeys: [`key-${randomBytes(12).toString('hex')}`],
    env: {
      STATUSHUB_REDIS_URL: REDIS_URL,
      STATUSHUB_REDIS_PREFIX: `node-failover-${randomBytes(4).toString('hex')}`,
      STATUSHUB_PUBLISH_RATE: '0',
    },
  };
  const doomed = await startServer(shared);
  t.after(() => doomed.stop());
  const survivor = await startServer(shared);
  t.after(() => survivor.stop());
  const account = uid('acct');

  const onDoomed = await connectTab(doomed, { account, transports: ['websocket'], name: 'on-doomed' });
  const onSurvivor = await connectTab(survivor, { account, transports: ['polling'], name: 'on-survivor' });
  await onDoomed.waitForEvent('snapshot');
  await onSurvivor.waitForEvent('snapshot');

  const acked = []; // { ack, node, loop, n } for every 201
  const unexpected = []; // a non-201, or a network error from a node that is up
  let crashed = false;
  let inFlightToDoomed = 0;
  const loop = async (node, name, i) => {
    for (let n = 0; unexpected.length === 0; n++) {
      if (node === doomed && crashed) return;
      if (node === survivor && crashed && acked.filter((a) => a.node === 'survivor-after').length >= ACKS_AFTER_KILL) {
        return;
      }
      if (node === doomed) inFlightToDoomed++;
      const wasCrashed = crashed;
      try {
        const res = await api(node, 'POST', `/v1/accounts/${account}/events`, {
          body: { event: 'test.burst', data: { node: name, loop: i, n } },
        });
        if (res.status === 201) acked.push({ ack: res.body, node: wasCrashed ? `${name}-after` : name, loop: i, n });
        else unexpected.push(`${name}: ${res.status} ${res.text}`);
      } catch (err) {
        // A request cut by the crash is never acknowledged; anything else is a failure.
        if (!(node === doomed && crashed)) unexpected.push(`${name}: ${err.cause?.message ?? err.message}`);
      } finally {
        if (node === doomed) inFlightToDoomed--;
      }
    }
  };
  const loops = [];
  for (let i = 0; i < LOOPS_PER_NODE; i++) {
    loops.push(loop(doomed, 'doomed', i), loop(survivor, 'survivor', i));
  }

  await waitFor(
    () => {
      if (unexpected.length) throw new Error(`publish failed before the crash: ${unexpected[0]}`);
      return acked.length >= ACKS_BEFORE_KILL;
    },
    { timeout: 20_000, message: () => `${ACKS_BEFORE_KILL} acks (have ${acked.length})` },
  );
  await waitFor(() => inFlightToDoomed >= 1, { message: 'a publish in flight to the doomed node' });
  crashed = true;
  const exit = await doomed.kill();
  assert.equal(exit.signal, 'SIGKILL');
  await Promise.all(loops);
  assert.deepEqual(unexpected, [], 'every publish to a live node answered 201');
  assert.ok(acked.some((a) => a.node === 'doomed'), 'the doomed node acknowledged publishes before it died');

  await waitFor(() => !onDoomed.socket.connected, { message: 'the doomed node tab notices the crash' });
  const S = onDoomed.lastSeq() ?? 0;
  assert.deepEqual(onDoomed.seqs(), range(1, S), 'live delivery on the doomed node was contiguous');

  const events = await getAllEvents(survivor, account, 0);
  const seqs = events.map((e) => e.seq);
  const max = seqs.length ? seqs[seqs.length - 1] : 0;
  assert.deepEqual(seqs, range(1, max), 'stored seqs are 1..max with no gap and no duplicate');
  const bySeq = new Map(events.map((e) => [e.seq, e]));
  for (const { ack, node, loop: i, n } of acked) {
    const stored = bySeq.get(ack.seq);
    assert.ok(stored, `acknowledged seq ${ack.seq} (${node} loop ${i} n ${n}) is stored`);
    assert.equal(stored.id, ack.id, `seq ${ack.seq} kept its id`);
    assert.deepEqual(stored.data, { node: node.replace('-after', ''), loop: i, n });
  }

  // The survivor's own tab saw everything, once, in order, without a reconnect.
  await onSurvivor.waitForCount((e) => e.meta, max, 20_000);
  assert.deepEqual(
    onSurvivor.sequenced().map((e) => [e.meta.seq, e.meta.id]),
    events.map((e) => [e.seq, e.id]),
    'the survivor tab: every event once, in order',
  );
  assert.equal(onSurvivor.connects, 1, 'the survivor tab never reconnected');

  // The dead node's tab resumes on the survivor from the last seq it saw.
  const resumed = await connectTab(survivor, { account, since: S, transports: ['websocket'], name: 'resumed' });
  if (max > S) await resumed.waitForCount((e) => e.meta, max - S, 20_000);
  assert.equal(resumed.named('snapshot').length, 0, 'an exact resume, not a reset');
  assert.deepEqual(
    resumed.sequenced().map((e) => [e.meta.seq, e.meta.id]),
    events.filter((e) => e.seq > S).map((e) => [e.seq, e.id]),
    'resume on the survivor: everything after S, in order, once',
  );
  t.diagnostic(`acked ${acked.length}, stored ${max}, doomed tab at ${S}`);
});
