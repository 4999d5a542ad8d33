/**
 * Subscription filters and presence in the SDK: `connect({filter})` sends the filter on every
 * (re)connect, a filtered client takes a jump in seq as normal (no resync), an unfiltered one
 * still resyncs; `fetchPresence()` reads the account's connections over real HTTP on loopback.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client.js';
import { applyEvent, applySnapshot, initialState } from '../src/state.js';
import type { Presence, SubscriptionFilter } from '../src/types.js';
import { fakeIo } from './fake-socket.js';
import { ACCOUNT, jwt, meta, phone, snapshot } from './fixtures.js';

const filter: SubscriptionFilter = [{ phoneIds: ['p1'] }, { events: ['order.*'], kinds: ['recovery'] }];

function live(withFilter: boolean) {
  const fake = fakeIo();
  const client = connect({ url: 'http://hub.test', token: 'tok-1', io: fake.io, ...(withFilter ? { filter } : {}) });
  const auth = fake.socket.serverConnect();
  fake.socket.emit('snapshot', snapshot(5, { epoch: 'e1' }));
  const seen: number[] = [];
  client.onAny((_event, _data, m) => seen.push(m.seq));
  return { client, socket: fake.socket, auth, seen };
}

describe('filter', () => {
  it('is sent on the first connect and with since and epoch on every reconnect', () => {
    const { socket, auth } = live(true);
    expect(auth).toEqual({ token: 'tok-1', filter });
    socket.emit('phone_status_changed', phone('p1'), meta(9));
    socket.drop();
    expect(socket.serverConnect()).toEqual({ token: 'tok-1', since: 9, epoch: 'e1', filter });
  });

  it('makes a jump in seq normal: applied and delivered, no resync', () => {
    const { client, socket, seen } = live(true);
    socket.emit('phone_status_changed', phone('p1'), meta(9));
    socket.emit('order.paid', {}, meta(12));
    socket.emit('phone_status_changed', phone('p1', false), meta(12));
    expect(seen).toEqual([9, 12]);
    expect(client.getState().seq).toBe(12);
    expect(client.getState().phones.p1?.isActive).toBe(true);
    expect(socket.disconnectCalls).toBe(0);
    expect(client.status).toBe('ready');
  });

  it('leaves an unfiltered client resyncing on a gap', () => {
    const { socket, seen } = live(false);
    socket.emit('phone_status_changed', phone('p1'), meta(9));
    expect(seen).toEqual([]);
    expect(socket.disconnectCalls).toBe(1);
  });

  it('is a flag of applyEvent: a newer seq applies only when gaps are expected', () => {
    const state = applySnapshot(initialState, snapshot(5));
    const ev = { event: 'phone_status_changed', data: phone('p2'), meta: meta(8) };
    expect(applyEvent(state, ev).type).toBe('gap');
    const outcome = applyEvent(state, ev, true);
    expect(outcome.type === 'applied' && outcome.state.seq).toBe(8);
    expect(applyEvent(state, { ...ev, meta: meta(5) }, true).type).toBe('duplicate');
  });
});

describe('fetchPresence', () => {
  it("GETs the token's account presence with the client's token", async () => {
    const presence: Presence = {
      accountId: ACCOUNT,
      node: 'node-1',
      connections: [
        { connectionId: 'ws-1', accountId: ACCOUNT, user: 'user-1', transport: 'websocket', node: 'node-1', connectedSince: '2026-01-01T00:00:00Z', lastSeq: 42, filtered: false },
      ],
    };
    const seen: string[] = [];
    const http = createServer((req, res) => {
      seen.push(`${req.url} ${req.headers.authorization}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(presence));
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const token = jwt(ACCOUNT);
    const client = connect({ url, token, io: fakeIo().io, autoConnect: false });
    try {
      expect(await client.fetchPresence()).toEqual(presence);
      expect(seen).toEqual([`/v1/accounts/${ACCOUNT}/presence Bearer ${token}`]);
    } finally {
      await new Promise((r) => http.close(r));
    }
  });
});
