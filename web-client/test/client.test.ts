import { describe, expect, it, vi } from 'vitest';
import { connect } from '../src/client.js';
import type { ConnectionStatus, ConnectOptions } from '../src/client.js';
import { fakeIo } from './fake-socket.js';
import { ACCOUNT, health, job, jwt, meta, phone, snapshot, statusSync } from './fixtures.js';

const flush = () => new Promise((r) => setTimeout(r, 0));

function setup(opts: Partial<ConnectOptions> = {}) {
  const fake = fakeIo();
  const client = connect({ url: 'http://hub.test', token: 'tok-1', io: fake.io, ...opts });
  const statuses: ConnectionStatus[] = [];
  client.onStatus((s) => statuses.push(s));
  const errors: Error[] = [];
  client.onError((e) => e && errors.push(e));
  return { client, fake, socket: fake.socket, statuses, errors };
}

/** Connected with a snapshot at `seq`. */
function live(seq = 5, opts: Partial<ConnectOptions> = {}) {
  const t = setup(opts);
  t.socket.serverConnect();
  t.socket.emit('snapshot', snapshot(seq));
  return t;
}

describe('connecting', () => {
  it('passes url and socketOptions, uses the auth function form, and connects', () => {
    const { fake, socket, client } = setup({ socketOptions: { transports: ['websocket'], path: '/socket.io/' } });
    expect(fake.sockets).toHaveLength(1);
    expect(socket.url).toBe('http://hub.test');
    expect(socket.options.transports).toEqual(['websocket']);
    expect(socket.options.path).toBe('/socket.io/');
    expect(typeof socket.options.auth).toBe('function');
    expect(socket.connectCalls).toBe(1);
    expect(client.status).toBe('connecting');
  });

  it('omits since before the first snapshot', () => {
    const { socket } = setup();
    expect(socket.serverConnect()).toEqual({ token: 'tok-1' });
  });

  it('goes connecting -> connected', () => {
    const { socket, client, statuses } = setup();
    socket.serverConnect();
    expect(client.status).toBe('ready');
    expect(statuses).toEqual(['ready']);
  });

  it('applies the snapshot to the state', () => {
    const { socket, client } = setup();
    socket.serverConnect();
    socket.emit('snapshot', snapshot(3, { phones: { p1: phone('p1') } }));
    expect(client.getState()).toMatchObject({ accountId: ACCOUNT, seq: 3, phones: { p1: phone('p1') } });
  });

  it('holds events that come before the snapshot and applies the newer ones after it', () => {
    const { socket, client } = setup();
    const seen: number[] = [];
    client.onPhoneStatusChanged((_d, m) => seen.push(m.seq));
    socket.serverConnect();
    socket.emit('phone_status_changed', phone('p1'), meta(3));
    socket.emit('phone_status_changed', phone('p2'), meta(4));
    expect(client.getState().seq).toBe(0);
    socket.emit('snapshot', snapshot(3, { phones: { p1: phone('p1') } }));
    expect(seen).toEqual([4]);
    expect(client.getState().seq).toBe(4);
    expect(Object.keys(client.getState().phones).sort()).toEqual(['p1', 'p2']);
  });

  it('reports a malformed snapshot and keeps the state', () => {
    const { socket, client, errors } = live(2);
    const before = client.getState();
    socket.emit('snapshot', { nope: true });
    expect(client.getState()).toBe(before);
    expect(errors[0]?.message).toMatch(/malformed snapshot/);
  });
});

describe('events and state', () => {
  it('updates each map and calls the typed listeners with (data, meta)', () => {
    const { socket, client } = live(0);
    const calls: string[] = [];
    client.onPhoneStatusChanged((d, m) => calls.push(`phone ${d.phoneNumberId} ${m.seq} ${m.id}`));
    client.onStatusSync((d, m) => calls.push(`sync ${d.provider} ${m.seq}`));
    client.onHealthChanged((d, m) => calls.push(`health ${d.current.health} ${m.seq}`));
    client.onSyncProgress((d, m) => calls.push(`job ${d.progress.done} ${m.seq}`));
    socket.emit('phone_status_changed', phone('p1'), meta(1));
    socket.emit('status_sync', statusSync('meta'), meta(2));
    socket.emit('health_changed', health('m1', 'unhealthy'), meta(3));
    socket.emit('sync_progress', job('j1', 4), meta(4));
    expect(calls).toEqual([`phone p1 1 evt-${ACCOUNT}-1`, 'sync meta 2', 'health unhealthy 3', 'job 4 4']);
    const s = client.getState();
    expect(s.seq).toBe(4);
    expect(s.phones.p1?.status).toBe('ACTIVE');
    expect(s.credentials['meta:u1']?.success).toBe(true);
    expect(s.monitors.m1?.health).toBe('unhealthy');
    expect(s.jobs.j1?.progress.done).toBe(4);
  });

  it('delivers custom events through on(), in seq order with the others', () => {
    const { socket, client } = live(0);
    const got: unknown[] = [];
    client.on<{ amount: number }>('invoice.paid', (d, m) => got.push([d.amount, m.seq]));
    socket.emit('invoice.paid', { amount: 42 }, meta(1));
    socket.emit('invoice.paid', { amount: 42 }, meta(1));
    expect(got).toEqual([[42, 1]]);
    expect(client.getState().seq).toBe(1);
  });

  it('onAny sees every delivered event after the named listeners, and unsubscribes', () => {
    const { socket, client } = live(0);
    const calls: string[] = [];
    client.onPhoneStatusChanged((_d, m) => calls.push(`named ${m.seq}`));
    const stop = client.onAny((event, _d, m) => calls.push(`any ${event} ${m.seq}`));
    socket.emit('phone_status_changed', phone('p1'), meta(1));
    socket.emit('invoice.paid', { amount: 1 }, meta(2));
    socket.emit('invoice.paid', { amount: 1 }, meta(2)); // duplicate: nobody sees it
    socket.emit('snapshot', snapshot(2)); // not an event
    stop();
    socket.emit('invoice.paid', { amount: 2 }, meta(3));
    expect(calls).toEqual(['named 1', 'any phone_status_changed 1', 'any invoice.paid 2']);
  });

  it('ignores duplicates: no listener call, no state change', () => {
    const { socket, client } = live(5);
    const fn = vi.fn();
    const sub = vi.fn();
    client.onPhoneStatusChanged(fn);
    socket.emit('phone_status_changed', phone('p1'), meta(6));
    client.subscribe(sub);
    const s = client.getState();
    socket.emit('phone_status_changed', phone('p1', false), meta(6));
    socket.emit('phone_status_changed', phone('p1', false), meta(3));
    expect(fn).toHaveBeenCalledTimes(1);
    expect(sub).not.toHaveBeenCalled();
    expect(client.getState()).toBe(s);
    expect(s.phones.p1?.isActive).toBe(true);
  });

  it('subscribe gets each new state; getState is stable between changes', () => {
    const { socket, client } = live(0);
    const states: number[] = [];
    client.subscribe((s) => states.push(s.seq));
    const a = client.getState();
    expect(client.getState()).toBe(a);
    socket.emit('sync_progress', job('j1', 1), meta(1));
    socket.emit('sync_progress', job('j1', 2), meta(2));
    expect(states).toEqual([1, 2]);
    expect(client.getState()).not.toBe(a);
  });

  it('delivers events of another account to listeners without touching the state', () => {
    const { socket, client } = live(5);
    const fn = vi.fn();
    client.onPhoneStatusChanged(fn);
    socket.emit('phone_status_changed', phone('x'), meta(99, 'acct-2'));
    expect(fn).toHaveBeenCalledOnce();
    expect(client.getState().seq).toBe(5);
    expect(client.getState().phones).toEqual({});
  });

  it('a throwing listener goes to onError and does not stop the others', () => {
    const { socket, client, errors } = live(0);
    const after = vi.fn();
    client.onPhoneStatusChanged(() => {
      throw new Error('boom');
    });
    client.onPhoneStatusChanged(after);
    socket.emit('phone_status_changed', phone('p1'), meta(1));
    socket.emit('phone_status_changed', phone('p1'), meta(2));
    expect(after).toHaveBeenCalledTimes(2);
    expect(errors.map((e) => e.message)).toEqual(['boom', 'boom']);
    expect(client.getState().seq).toBe(2);
  });
});

describe('unsubscribing', () => {
  it('each on* returns an unsubscribe that works', () => {
    const { socket, client } = live(0);
    const fns = { phone: vi.fn(), sync: vi.fn(), health: vi.fn(), job: vi.fn(), custom: vi.fn(), state: vi.fn() };
    const unsubs = [
      client.onPhoneStatusChanged(fns.phone),
      client.onStatusSync(fns.sync),
      client.onHealthChanged(fns.health),
      client.onSyncProgress(fns.job),
      client.on('custom.thing', fns.custom),
      client.subscribe(fns.state),
    ];
    unsubs.forEach((u) => u());
    socket.emit('phone_status_changed', phone('p1'), meta(1));
    socket.emit('status_sync', statusSync('meta'), meta(2));
    socket.emit('health_changed', health('m1', 'healthy'), meta(3));
    socket.emit('sync_progress', job('j1', 1), meta(4));
    socket.emit('custom.thing', {}, meta(5));
    for (const fn of Object.values(fns)) expect(fn).not.toHaveBeenCalled();
    expect(client.getState().seq).toBe(5);
  });

  it('off* removes only the given listener', () => {
    const { socket, client } = live(0);
    const a = vi.fn();
    const b = vi.fn();
    const c = vi.fn();
    client.onPhoneStatusChanged(a);
    client.onPhoneStatusChanged(b);
    client.on('custom.thing', c);
    client.offPhoneStatusChanged(a);
    client.off('custom.thing', c);
    socket.emit('phone_status_changed', phone('p1'), meta(1));
    socket.emit('custom.thing', {}, meta(2));
    expect(a).not.toHaveBeenCalled();
    expect(b).toHaveBeenCalledOnce();
    expect(c).not.toHaveBeenCalled();
  });

  it('onStatus and onError unsubscribe', () => {
    const { socket, client } = setup();
    const st = vi.fn();
    const er = vi.fn();
    client.onStatus(st)();
    client.onError(er)();
    socket.serverConnect();
    socket.refuse('forbidden');
    expect(st).not.toHaveBeenCalled();
    expect(er).not.toHaveBeenCalled();
  });
});

describe('reconnect and resume', () => {
  it('a drop goes reconnecting, reconnects with since = last seq, then resumed', () => {
    const { socket, client, statuses } = live(5);
    socket.emit('phone_status_changed', phone('p1'), meta(6));
    socket.emit('phone_status_changed', phone('p1'), meta(7));
    socket.drop();
    expect(client.status).toBe('reconnecting');
    expect(socket.serverConnect()).toEqual({ token: 'tok-1', since: 7 });
    expect(client.status).toBe('ready');
    expect(statuses).toEqual(['ready', 'reconnecting', 'ready']);
    socket.emit('phone_status_changed', phone('p1', false), meta(7)); // replayed duplicate
    socket.emit('phone_status_changed', phone('p1', false), meta(8));
    expect(client.getState().seq).toBe(8);
  });

  it('since follows the last seq on every reconnect', () => {
    const { socket } = live(5);
    socket.drop();
    expect(socket.serverConnect().since).toBe(5);
    socket.emit('sync_progress', job('j', 1), meta(6));
    socket.drop();
    expect(socket.serverConnect().since).toBe(6);
  });

  it('since: 0 is sent after an empty snapshot (baseline exists)', () => {
    const { socket } = live(0);
    socket.drop();
    expect(socket.serverConnect()).toEqual({ token: 'tok-1', since: 0 });
  });

  it('a reconnect before any snapshot omits since: ready, not an exact resume', () => {
    const { socket, client } = setup();
    socket.serverConnect();
    socket.drop();
    expect(socket.serverConnect()).toEqual({ token: 'tok-1' });
    expect(client.status).toBe('ready');
    expect(client.connection.lastResume).toBe('none');
  });

  it('a reset snapshot after a resume drops the old state and reports connected', () => {
    const { socket, client, statuses } = live(5);
    socket.emit('phone_status_changed', phone('old'), meta(6));
    socket.drop();
    socket.serverConnect();
    expect(client.status).toBe('ready');
    socket.emit('snapshot', snapshot(500, { reset: true, phones: { fresh: phone('fresh') } }));
    expect(Object.keys(client.getState().phones)).toEqual(['fresh']);
    expect(client.getState().seq).toBe(500);
    expect(statuses).toEqual(['ready', 'reconnecting', 'ready']);
    expect(client.connection.lastResume).toBe('reset');
  });

  it('a server disconnect (no auto-retry in socket.io) ends in disconnected', () => {
    const { socket, client } = live(1);
    socket.kick();
    expect(client.status).toBe('disconnected');
  });

  it('a cut-off announced by the hub (statushub:disconnect, reconnect: true) resumes with since', async () => {
    const { socket, client, statuses } = live(5);
    const custom = vi.fn();
    client.on('statushub:disconnect', custom);
    socket.emit('phone_status_changed', phone('p1'), meta(6));
    socket.emit('statushub:disconnect', { reason: 'slow_consumer', reconnect: true });
    socket.kick();
    expect(client.status).toBe('reconnecting');
    await flush();
    expect(socket.connectCalls).toBe(2);
    expect(socket.serverConnect()).toEqual({ token: 'tok-1', since: 6 });
    expect(client.status).toBe('ready');
    expect(statuses).toEqual(['ready', 'reconnecting', 'ready']);
    expect(custom).not.toHaveBeenCalled(); // the notice is the client's business, not an event
  });

  it('repeated cut-offs back off with the socket.io delays; a close while waiting stops it', () => {
    vi.useFakeTimers();
    try {
      const opts = { socketOptions: { reconnectionDelay: 100, reconnectionDelayMax: 150 } };
      const { socket, client } = live(5, opts);
      const cut = () => {
        socket.emit('statushub:disconnect', { reason: 'slow_consumer', reconnect: true });
        socket.kick();
      };
      cut();
      vi.advanceTimersByTime(0);
      expect(socket.connectCalls).toBe(2);
      socket.serverConnect();
      cut();
      vi.advanceTimersByTime(99);
      expect(socket.connectCalls).toBe(2);
      vi.advanceTimersByTime(1);
      expect(socket.connectCalls).toBe(3);
      socket.serverConnect();
      cut();
      vi.advanceTimersByTime(149);
      expect(socket.connectCalls).toBe(3);
      client.close();
      vi.advanceTimersByTime(1000);
      expect(socket.connectCalls).toBe(3);
      expect(client.status).toBe('disconnected');
    } finally {
      vi.useRealTimers();
    }
  });

  it('a cut-off notice without reconnect: true, or with reconnection: false, ends disconnected', async () => {
    const a = live(1);
    a.socket.emit('statushub:disconnect', { reason: 'forbidden', reconnect: false });
    a.socket.kick();
    const b = live(1, { socketOptions: { reconnection: false } });
    b.socket.emit('statushub:disconnect', { reason: 'slow_consumer', reconnect: true });
    b.socket.kick();
    await flush();
    expect([a.client.status, b.client.status]).toEqual(['disconnected', 'disconnected']);
    expect([a.socket.connectCalls, b.socket.connectCalls]).toEqual([1, 1]);
  });

  it('a failed reconnect attempt keeps reconnecting while socket.io retries', () => {
    const { socket, client, errors } = live(1);
    socket.drop();
    socket.open();
    socket.fail('xhr poll error');
    expect(client.status).toBe('reconnecting');
    expect(errors[0]?.message).toBe('xhr poll error');
  });

  it('ends disconnected when socket.io runs out of reconnection attempts', () => {
    const { socket, client } = live(1);
    socket.drop();
    socket.io.emit('reconnect_failed');
    expect(client.status).toBe('disconnected');
  });

  it('with reconnection: false a drop or a failed first attempt ends disconnected', () => {
    const a = live(1, { socketOptions: { reconnection: false } });
    a.socket.drop();
    expect(a.client.status).toBe('disconnected');
    const b = setup({ socketOptions: { reconnection: false } });
    b.socket.open();
    b.socket.fail('websocket error');
    expect(b.client.status).toBe('disconnected');
    expect(b.errors.map((e) => e.message)).toEqual(['websocket error']);
  });
});

describe('gap resync', () => {
  it('a skipped seq disconnects and reconnects with since = last applied seq', () => {
    const { socket, client, statuses } = live(5);
    const fn = vi.fn();
    client.onPhoneStatusChanged(fn);
    socket.emit('phone_status_changed', phone('p1'), meta(6));
    socket.emit('phone_status_changed', phone('p3'), meta(8)); // 7 missing
    expect(socket.disconnectCalls).toBe(1);
    expect(socket.connectCalls).toBe(2);
    expect(client.status).toBe('reconnecting');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(client.getState().seq).toBe(6);
    expect(client.getState().phones.p3).toBeUndefined();
    expect(socket.serverConnect()).toEqual({ token: 'tok-1', since: 6 });
    expect(client.status).toBe('ready');
    socket.emit('phone_status_changed', phone('p2'), meta(7));
    socket.emit('phone_status_changed', phone('p3'), meta(8));
    expect(fn).toHaveBeenCalledTimes(3);
    expect(client.getState().seq).toBe(8);
    expect(statuses).toEqual(['ready', 'reconnecting', 'ready']);
  });

  it('gives up after repeated gaps without progress', () => {
    const { socket, client, errors } = live(5);
    for (let i = 0; i < 4; i++) {
      if (!socket.connected) socket.serverConnect();
      socket.emit('sync_progress', job('j', 1), meta(10));
    }
    expect(client.status).toBe('disconnected');
    expect(errors.at(-1)?.message).toMatch(/giving up/);
    expect(socket.active).toBe(false);
  });
});

describe('token refresh', () => {
  it('on an expired-token refusal calls getToken and reconnects with the new token and since', async () => {
    const getToken = vi.fn(async () => 'tok-2');
    const { socket, client, errors } = live(5, { getToken });
    socket.drop();
    socket.open();
    socket.refuse('Token has EXPIRED');
    expect(client.status).toBe('reconnecting');
    await flush();
    expect(getToken).toHaveBeenCalledOnce();
    expect(socket.active).toBe(true);
    expect(socket.serverConnect()).toEqual({ token: 'tok-2', since: 5 });
    expect(client.status).toBe('ready');
    expect(errors).toEqual([]);
  });

  it('refreshes on the first connect too', async () => {
    const { socket, client } = setup({ getToken: () => 'tok-2' });
    socket.open();
    socket.refuse('jwt expired');
    expect(client.status).toBe('connecting');
    await flush();
    expect(socket.serverConnect()).toEqual({ token: 'tok-2' });
    expect(client.status).toBe('ready');
  });

  it('later reconnects keep the refreshed token', async () => {
    const { socket } = live(1, { getToken: () => 'tok-2' });
    socket.drop();
    socket.open();
    socket.refuse('expired');
    await flush();
    socket.serverConnect();
    socket.drop();
    expect(socket.serverConnect().token).toBe('tok-2');
  });

  it('omits since when the new token is for another account', async () => {
    const { socket } = live(5, { token: jwt(ACCOUNT), getToken: () => jwt('acct-2') });
    socket.drop();
    socket.open();
    socket.refuse('expired');
    await flush();
    expect(socket.serverConnect()).toEqual({ token: jwt('acct-2') });
  });

  it('keeps since when the new token is for the same account', async () => {
    const { socket } = live(5, { token: jwt(ACCOUNT), getToken: () => jwt(ACCOUNT, 'new') });
    socket.drop();
    socket.open();
    socket.refuse('expired');
    await flush();
    expect(socket.serverConnect()).toEqual({ token: jwt(ACCOUNT, 'new'), since: 5 });
  });

  it('without getToken an expired refusal goes to onError and ends disconnected', () => {
    const { socket, client, errors } = setup();
    socket.open();
    socket.refuse('token expired');
    expect(errors.map((e) => e.message)).toEqual(['token expired']);
    expect(client.status).toBe('disconnected');
  });

  it('reports the refusal before the disconnected status it causes', () => {
    const { socket, client } = setup();
    const seen: string[] = [];
    client.onError((e) => seen.push(`error ${e?.message}`));
    client.onStatus((s) => seen.push(`status ${s}`));
    socket.open();
    socket.refuse('unauthorized: invalid token');
    expect(seen).toEqual(['error unauthorized: invalid token', 'status disconnected']);
  });

  it('other refusals go to onError without calling getToken', async () => {
    const getToken = vi.fn(() => 'tok-2');
    const { socket, client, errors } = setup({ getToken });
    socket.open();
    socket.refuse('invalid signature');
    await flush();
    expect(getToken).not.toHaveBeenCalled();
    expect(errors.map((e) => e.message)).toEqual(['invalid signature']);
    expect(client.status).toBe('disconnected');
  });

  it('a failing getToken goes to onError and ends disconnected', async () => {
    const { socket, client, errors } = setup({ getToken: () => Promise.reject(new Error('login required')) });
    socket.open();
    socket.refuse('expired');
    await flush();
    expect(errors.map((e) => e.message)).toEqual(['login required']);
    expect(client.status).toBe('disconnected');
    expect(socket.active).toBe(false);
  });

  it('stops refreshing when fresh tokens keep being refused as expired', async () => {
    const getToken = vi.fn(() => 'still-old');
    const { socket, client, errors } = setup({ getToken });
    for (let i = 0; i < 4; i++) {
      socket.open();
      socket.refuse('expired');
      await flush();
    }
    expect(getToken).toHaveBeenCalledTimes(3);
    expect(errors.map((e) => e.message)).toEqual(['expired']);
    expect(client.status).toBe('disconnected');
  });
});

describe('close', () => {
  it('disconnects, reports disconnected once and calls no listener after', () => {
    const { socket, client, statuses } = live(0);
    const fn = vi.fn();
    const sub = vi.fn();
    client.onPhoneStatusChanged(fn);
    client.subscribe(sub);
    client.close();
    client.close();
    expect(socket.disconnectCalls).toBe(1);
    expect(client.status).toBe('disconnected');
    expect(statuses).toEqual(['ready', 'disconnected']);
    socket.connected = true; // a late packet
    socket.emit('phone_status_changed', phone('p1'), meta(1));
    expect(fn).not.toHaveBeenCalled();
    expect(sub).not.toHaveBeenCalled();
  });

  it('a getToken that resolves after close does not reconnect', async () => {
    const { socket, client } = setup({ getToken: () => 'tok-2' });
    socket.open();
    socket.refuse('expired');
    client.close();
    await flush();
    expect(socket.active).toBe(false);
    expect(client.status).toBe('disconnected');
  });
});
