import { QueryClient } from '@tanstack/query-core';
import { describe, expect, it, vi } from 'vitest';
import { connect } from '../src/client.js';
import { invalidateOnStatusSync } from '../src/query.js';
import type { QueryInvalidator } from '../src/query.js';
import { fakeIo } from './fake-socket.js';
import { meta, snapshot, statusSync } from './fixtures.js';

function live() {
  const fake = fakeIo();
  const client = connect({ url: 'http://hub.test', token: 't', io: fake.io });
  fake.socket.serverConnect();
  fake.socket.emit('snapshot', snapshot(0));
  return { client, socket: fake.socket };
}

describe('invalidateOnStatusSync', () => {
  it('invalidates every key listed in status_sync.invalidateQueries', () => {
    const { client, socket } = live();
    const qc: QueryInvalidator = { invalidateQueries: vi.fn() };
    invalidateOnStatusSync(client, qc);
    socket.emit('status_sync', { ...statusSync('meta', 'u1'), invalidateQueries: [['credential-status', 'u1'], ['providers']] }, meta(1));
    expect(qc.invalidateQueries).toHaveBeenCalledTimes(2);
    expect(qc.invalidateQueries).toHaveBeenNthCalledWith(1, { queryKey: ['credential-status', 'u1'] });
    expect(qc.invalidateQueries).toHaveBeenNthCalledWith(2, { queryKey: ['providers'] });
  });

  it('does nothing for other events, duplicates, or after unsubscribe', () => {
    const { client, socket } = live();
    const qc = { invalidateQueries: vi.fn() };
    const stop = invalidateOnStatusSync(client, qc);
    socket.emit('phone_status_changed', { phoneNumberId: 'p' }, meta(1));
    socket.emit('status_sync', statusSync('meta'), meta(2));
    socket.emit('status_sync', statusSync('meta'), meta(2));
    expect(qc.invalidateQueries).toHaveBeenCalledTimes(1);
    stop();
    socket.emit('status_sync', statusSync('meta'), meta(3));
    expect(qc.invalidateQueries).toHaveBeenCalledTimes(1);
  });

  it('works with a real TanStack QueryClient (structural type fits)', () => {
    const { client, socket } = live();
    const qc = new QueryClient();
    qc.setQueryData(['credential-status', 'u1'], { ok: true });
    qc.setQueryData(['credential-status', 'u2'], { ok: true });
    invalidateOnStatusSync(client, qc);
    socket.emit('status_sync', statusSync('meta', 'u1'), meta(1));
    expect(qc.getQueryState(['credential-status', 'u1'])?.isInvalidated).toBe(true);
    expect(qc.getQueryState(['credential-status', 'u2'])?.isInvalidated).toBe(false);
  });
});
