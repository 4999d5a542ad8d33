import { QueryClient } from '@tanstack/query-core';
import { describe, expect, it, vi } from 'vitest';
import { connect } from '../src/client.js';
import { invalidateOnStatusSync } from '../src/query.js';
import type { QueryInvalidator } from '../src/query.js';
import { fakeIo } from './fake-socket.js';
import { meta, snapshot, statusSync } from './fixtures.js';

const tick = () => new Promise((r) => setTimeout(r, 0));

function live() {
  const fake = fakeIo();
  const client = connect({ url: 'http://hub.test', token: 't', io: fake.io });
  fake.socket.serverConnect();
  fake.socket.emit('snapshot', snapshot(0));
  return { client, socket: fake.socket };
}

describe('invalidateOnStatusSync', () => {
  it('invalidates every key listed in status_sync.invalidateQueries', async () => {
    const { client, socket } = live();
    const qc: QueryInvalidator = { invalidateQueries: vi.fn() };
    invalidateOnStatusSync(client, qc);
    socket.emit('status_sync', { ...statusSync('meta', 'u1'), invalidateQueries: [['credential-status', 'u1'], ['providers']] }, meta(1));
    await tick();
    expect(qc.invalidateQueries).toHaveBeenCalledTimes(2);
    expect(qc.invalidateQueries).toHaveBeenNthCalledWith(1, { queryKey: ['credential-status', 'u1'] });
    expect(qc.invalidateQueries).toHaveBeenNthCalledWith(2, { queryKey: ['providers'] });
  });

  it('does nothing for other events, duplicates, or after unsubscribe', async () => {
    const { client, socket } = live();
    const qc = { invalidateQueries: vi.fn() };
    const stop = invalidateOnStatusSync(client, qc);
    socket.emit('phone_status_changed', { phoneNumberId: 'p' }, meta(1));
    socket.emit('status_sync', statusSync('meta'), meta(2));
    await tick();
    socket.emit('status_sync', statusSync('meta'), meta(2));
    await tick();
    expect(qc.invalidateQueries).toHaveBeenCalledTimes(1);
    stop();
    socket.emit('status_sync', statusSync('meta'), meta(3));
    await tick();
    expect(qc.invalidateQueries).toHaveBeenCalledTimes(1);
  });

  it('a replay after a resume invalidates the union of its keys, each once', async () => {
    const { client, socket } = live();
    const qc = { invalidateQueries: vi.fn() };
    invalidateOnStatusSync(client, qc);
    socket.drop();
    socket.serverConnect();
    // The hub replays the missed events in one burst.
    socket.emit('status_sync', statusSync('binance', 'u1'), meta(1));
    socket.emit('status_sync', statusSync('binance', 'u2'), meta(2));
    socket.emit('status_sync', statusSync('meta', 'u1'), meta(3));
    await tick();
    expect(qc.invalidateQueries.mock.calls.map(([f]) => f.queryKey)).toEqual([
      ['credential-status', 'u1'],
      ['credential-status', 'u2'],
    ]);
  });

  it('after a reset snapshot invalidates every query it manages, and only those', async () => {
    const { client, socket } = live();
    const qc = new QueryClient();
    for (const key of [['credential-status', 'u1'], ['binance-connectivity', 'u2'], ['account-balance', 'u1', 'active'], ['mine', 1], ['unrelated']]) {
      qc.setQueryData(key, { ok: true });
    }
    invalidateOnStatusSync(client, qc, { queryKeys: [['mine']] });
    socket.drop();
    socket.serverConnect();
    socket.emit('snapshot', snapshot(40, { reset: true }));
    await tick();
    const invalidated = (key: unknown[]) => qc.getQueryState(key)?.isInvalidated;
    expect(invalidated(['credential-status', 'u1'])).toBe(true);
    expect(invalidated(['binance-connectivity', 'u2'])).toBe(true);
    expect(invalidated(['account-balance', 'u1', 'active'])).toBe(true);
    expect(invalidated(['mine', 1])).toBe(true);
    expect(invalidated(['unrelated'])).toBe(false);
  });

  it('works with a real TanStack QueryClient (structural type fits)', async () => {
    const { client, socket } = live();
    const qc = new QueryClient();
    qc.setQueryData(['credential-status', 'u1'], { ok: true });
    qc.setQueryData(['credential-status', 'u2'], { ok: true });
    invalidateOnStatusSync(client, qc);
    socket.emit('status_sync', statusSync('meta', 'u1'), meta(1));
    await tick();
    expect(qc.getQueryState(['credential-status', 'u1'])?.isInvalidated).toBe(true);
    expect(qc.getQueryState(['credential-status', 'u2'])?.isInvalidated).toBe(false);
  });
});
