import { describe, expect, it } from 'vitest';
import { applyEvent, applySnapshot, credentialOf, credentialsByProvider, initialState, isSnapshot, reduceData } from '../src/state.js';
import type { HubState } from '../src/state.js';
import type { HubEvent } from '../src/types.js';
import { ACCOUNT, health, job, meta, phone, snapshot, statusSync } from './fixtures.js';

const ev = (event: string, data: unknown, seq: number, accountId = ACCOUNT): HubEvent => ({
  event,
  data,
  meta: meta(seq, accountId),
});

function applied(state: HubState, e: HubEvent): HubState {
  const out = applyEvent(state, e);
  if (out.type !== 'applied') throw new Error(`expected applied, got ${out.type}`);
  return out.state;
}

describe('initialState', () => {
  it('has no baseline and empty maps', () => {
    expect(initialState).toEqual({ accountId: null, seq: 0, phones: {}, credentials: {}, monitors: {}, jobs: {} });
  });
});

describe('applySnapshot', () => {
  it('replaces the state with the snapshot', () => {
    const s = applySnapshot(initialState, snapshot(7, { phones: { p1: phone('p1') } }));
    expect(s.accountId).toBe(ACCOUNT);
    expect(s.seq).toBe(7);
    expect(s.phones).toEqual({ p1: phone('p1') });
    expect(initialState.phones).toEqual({});
  });

  it('keeps nothing of the old state (newer snapshot without reset)', () => {
    const old = applySnapshot(initialState, snapshot(3, { phones: { p1: phone('p1') }, jobs: { j1: job('j1', 1) } }));
    const s = applySnapshot(old, snapshot(9, { phones: { p2: phone('p2') } }));
    expect(s.phones).toEqual({ p2: phone('p2') });
    expect(s.jobs).toEqual({});
    expect(s.seq).toBe(9);
  });

  it('reset: true drops old state even when its seq is lower', () => {
    let s = applySnapshot(initialState, snapshot(3, { phones: { p1: phone('p1') } }));
    s = applied(s, ev('status_sync', statusSync('meta'), 4));
    const r = applySnapshot(s, snapshot(2, { reset: true, monitors: { m1: health('m1', 'healthy').current } }));
    expect(r.phones).toEqual({});
    expect(r.credentials).toEqual({});
    expect(r.monitors).toEqual({ m1: health('m1', 'healthy').current });
    expect(r.seq).toBe(2);
  });

  it('ignores a stale snapshot of the same account (lower seq, no reset)', () => {
    const s = applySnapshot(initialState, snapshot(10, { phones: { p1: phone('p1') } }));
    expect(applySnapshot(s, snapshot(4))).toBe(s);
  });

  it('takes a snapshot of another account whatever its seq', () => {
    const s = applySnapshot(initialState, snapshot(10, { phones: { p1: phone('p1') } }));
    const other = applySnapshot(s, { ...snapshot(1), accountId: 'acct-2' });
    expect(other.accountId).toBe('acct-2');
    expect(other.seq).toBe(1);
    expect(other.phones).toEqual({});
  });

  it('treats missing maps as empty and does not share the snapshot objects', () => {
    const snap = { accountId: ACCOUNT, seq: 1, phones: { p1: phone('p1') } } as never;
    const s = applySnapshot(initialState, snap);
    expect(s.jobs).toEqual({});
    expect(s.phones).not.toBe((snap as { phones: object }).phones);
  });

  it('isSnapshot rejects malformed payloads', () => {
    expect(isSnapshot(snapshot(0))).toBe(true);
    expect(isSnapshot({ seq: 1 })).toBe(false);
    expect(isSnapshot({ accountId: 'a', seq: '1' })).toBe(false);
    expect(isSnapshot({ accountId: 'a', seq: -1 })).toBe(false);
    expect(isSnapshot(null)).toBe(false);
  });
});

describe('applyEvent ordering', () => {
  const base = applySnapshot(initialState, snapshot(5));

  it('needs a baseline (snapshot) first', () => {
    expect(applyEvent(initialState, ev('phone_status_changed', phone('p1'), 1))).toEqual({ type: 'no_baseline' });
  });

  it('applies seq = lastSeq + 1 and advances seq', () => {
    const s = applied(base, ev('phone_status_changed', phone('p1'), 6));
    expect(s.seq).toBe(6);
    expect(s.phones.p1).toEqual(phone('p1'));
  });

  it('ignores duplicates (seq <= lastSeq) without changing state', () => {
    const s = applied(base, ev('phone_status_changed', phone('p1'), 6));
    expect(applyEvent(s, ev('phone_status_changed', phone('p1', false), 6))).toEqual({ type: 'duplicate' });
    expect(applyEvent(s, ev('phone_status_changed', phone('p1', false), 2))).toEqual({ type: 'duplicate' });
    expect(s.phones.p1!.isActive).toBe(true);
  });

  it('reports a gap (seq > lastSeq + 1) with expected and received seq', () => {
    expect(applyEvent(base, ev('phone_status_changed', phone('p1'), 8))).toEqual({
      type: 'gap',
      expected: 6,
      received: 8,
    });
  });

  it('sets apart events of another account', () => {
    expect(applyEvent(base, ev('phone_status_changed', phone('p1'), 6, 'acct-2'))).toEqual({ type: 'foreign' });
  });

  it('rejects events without usable meta', () => {
    expect(applyEvent(base, { event: 'x', data: {}, meta: undefined as never })).toEqual({ type: 'invalid' });
    expect(applyEvent(base, { event: 'x', data: {}, meta: { ...meta(6), seq: '6' as never } })).toEqual({
      type: 'invalid',
    });
    expect(applyEvent(base, { event: 'x', data: {}, meta: { ...meta(6), seq: 6.5 } })).toEqual({ type: 'invalid' });
  });

  it('applies a long run in order and ends at the last seq', () => {
    let s = base;
    for (let seq = 6; seq <= 105; seq++) s = applied(s, ev('sync_progress', job('j1', seq - 5, 100), seq));
    expect(s.seq).toBe(105);
    expect(s.jobs.j1!.progress).toEqual({ done: 100, total: 100 });
    expect(s.jobs.j1!.status).toBe('completed');
  });
});

describe('applyEvent payloads', () => {
  const base = applySnapshot(initialState, snapshot(0));

  it('phone_status_changed updates phones[phoneNumberId]', () => {
    let s = applied(base, ev('phone_status_changed', phone('p1'), 1));
    s = applied(s, ev('phone_status_changed', phone('p1', false), 2));
    expect(s.phones).toEqual({ p1: phone('p1', false) });
  });

  it('status_sync updates credentials["{provider}:{userId}"]', () => {
    const s = applied(base, ev('status_sync', statusSync('whatsapp', 'u9', false), 1));
    expect(Object.keys(s.credentials)).toEqual(['whatsapp:u9']);
    expect(s.credentials['whatsapp:u9']!.success).toBe(false);
    expect(credentialOf(s, 'whatsapp', 'u9')?.userId).toBe('u9');
  });

  it("two users' tests of one provider coexist; the provider view groups them", () => {
    let s = applied(base, ev('status_sync', statusSync('binance', 'u2', false), 1));
    s = applied(s, ev('status_sync', statusSync('binance', 'u1', true), 2));
    s = applied(s, ev('status_sync', statusSync('meta', 'u1', true), 3));
    expect(Object.keys(s.credentials).sort()).toEqual(['binance:u1', 'binance:u2', 'meta:u1']);
    expect(credentialOf(s, 'binance', 'u2')?.success).toBe(false);
    const byProvider = credentialsByProvider(s);
    expect(byProvider.binance!.map((c) => [c.userId, c.success])).toEqual([['u1', true], ['u2', false]]);
    expect(byProvider.meta!.map((c) => c.userId)).toEqual(['u1']);
  });

  it('a snapshot from an older hub (keyed by provider) is read under the per-user keys', () => {
    const s = applySnapshot(initialState, snapshot(2, { credentials: { binance: statusSync('binance', 'u1', false), 'binance:u2': statusSync('binance', 'u2') } }));
    expect(Object.keys(s.credentials).sort()).toEqual(['binance:u1', 'binance:u2']);
    // A newer entry for the same user wins over the legacy one.
    const both = applySnapshot(initialState, snapshot(2, { credentials: { binance: statusSync('binance', 'u1', false), 'binance:u1': statusSync('binance', 'u1', true) } }));
    expect(Object.keys(both.credentials)).toEqual(['binance:u1']);
    expect(both.credentials['binance:u1']!.success).toBe(true);
  });

  it('monitor_removed drops monitors[monitorId] and keeps the others', () => {
    const withTwo = applied(applied(base, ev('health_changed', health('m1', 'unhealthy'), 1)), ev('health_changed', health('m2', 'healthy'), 2));
    const s = applied(withTwo, ev('monitor_removed', { monitorId: 'm1', timestamp: 'T' }, 3));
    expect(Object.keys(s.monitors)).toEqual(['m2']);
    expect(s.seq).toBe(3);
  });

  it('health_changed stores data.current in monitors[monitorId]', () => {
    const s = applied(base, ev('health_changed', health('m1', 'unhealthy'), 1));
    expect(s.monitors.m1).toEqual(health('m1', 'unhealthy').current);
    expect(s.monitors.m1).not.toHaveProperty('previous');
  });

  it('sync_progress updates jobs[syncId]', () => {
    const s = applied(base, ev('sync_progress', job('j7', 3), 1));
    expect(s.jobs.j7!.progress.done).toBe(3);
  });

  it('a custom event only advances seq', () => {
    const s = applied(base, ev('invoice.paid', { amount: 5 }, 1));
    expect(s.seq).toBe(1);
    expect(s.phones).toBe(base.phones);
    expect(s.jobs).toBe(base.jobs);
  });

  it('never mutates the previous state; untouched maps keep their identity', () => {
    const before = applied(base, ev('phone_status_changed', phone('p1'), 1));
    const frozen = JSON.stringify(before);
    const after = applied(before, ev('phone_status_changed', phone('p2'), 2));
    expect(JSON.stringify(before)).toBe(frozen);
    expect(after.phones).not.toBe(before.phones);
    expect(after.credentials).toBe(before.credentials);
    expect(Object.keys(after.phones).sort()).toEqual(['p1', 'p2']);
  });

  it('reduceData ignores payloads without their key field and inherited names', () => {
    expect(reduceData(base, 'phone_status_changed', { isActive: true })).toBe(base);
    expect(reduceData(base, 'status_sync', null)).toBe(base);
    expect(reduceData(base, 'toString', { provider: 'x' })).toBe(base);
  });
});
