/**
 * The client over the real socket.io-client, against a small socket.io server on loopback that
 * plays the hub's part of the contract (auth { token, since }, snapshot or replay, connect_error).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import type { Socket as ServerSocket } from 'socket.io';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect } from '../src/client.js';
import type { ConnectionStatus, StatushubClient } from '../src/client.js';
import { ACCOUNT, meta, phone, snapshot } from './fixtures.js';

async function waitFor(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let io: Server;
let url: string;
let auths: Array<Record<string, unknown>>;
let sockets: ServerSocket[];
let clients: StatushubClient[];
/** Events of the account, seq = index + 1. */
let log: Array<[string, unknown]>;

beforeEach(async () => {
  auths = [];
  sockets = [];
  clients = [];
  log = [];
  const http = createServer();
  io = new Server(http);
  io.use((socket, next) => {
    const auth = socket.handshake.auth as Record<string, unknown>;
    auths.push(auth);
    if (String(auth.token).startsWith('old')) return next(new Error('token expired'));
    if (auth.token === 'bad') return next(new Error('invalid token'));
    next();
  });
  io.on('connection', (socket) => {
    sockets.push(socket);
    const since = socket.handshake.auth.since as number | undefined;
    if (since === undefined) socket.emit('snapshot', snapshot(log.length));
    else log.forEach(([name, data], i) => i + 1 > since && socket.emit(name, data, meta(i + 1)));
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

afterEach(async () => {
  clients.forEach((c) => c.close());
  await new Promise((r) => io.close(r));
});

function publish(name: string, data: unknown, { skip = false } = {}) {
  log.push([name, data]);
  if (!skip) for (const s of sockets) if (s.connected) s.emit(name, data, meta(log.length));
}

function start(token = 'tok', getToken?: () => string) {
  const client = connect({
    url,
    token,
    ...(getToken ? { getToken } : {}),
    socketOptions: { transports: ['websocket'], reconnectionDelay: 10, reconnectionDelayMax: 20 },
  });
  clients.push(client);
  const statuses: ConnectionStatus[] = [];
  client.onStatus((s) => statuses.push(s));
  const errors: string[] = [];
  client.onError((e) => e && errors.push(e.message));
  return { client, statuses, errors };
}

describe('over real Socket.IO', () => {
  it('connects, gets the snapshot, then live events', async () => {
    publish('phone_status_changed', phone('a'));
    const { client } = start();
    await waitFor(() => client.getState().seq === 1, 'snapshot');
    expect(auths[0]).toEqual({ token: 'tok' });
    expect(client.status).toBe('ready');
    publish('phone_status_changed', phone('b'));
    await waitFor(() => client.getState().seq === 2, 'live event');
    expect(client.getState().accountId).toBe(ACCOUNT);
    expect(Object.keys(client.getState().phones)).toEqual(['b']);
  });

  it('resumes after a dropped transport with since and gets the missed events', async () => {
    const { client, statuses } = start();
    await waitFor(() => client.getState().accountId !== null, 'snapshot');
    publish('phone_status_changed', phone('a'));
    await waitFor(() => client.getState().seq === 1, 'event 1');
    sockets[0]!.conn.close(); // the network drops
    publish('phone_status_changed', phone('b')); // missed while away
    await waitFor(() => client.getState().seq === 2, 'replayed event 2');
    expect(auths.at(-1)).toEqual({ token: 'tok', since: 1 });
    expect(statuses).toEqual(['ready', 'reconnecting', 'ready']);
    expect(Object.keys(client.getState().phones).sort()).toEqual(['a', 'b']);
  });

  it('reconnects with since after the hub cuts it off as a slow consumer', async () => {
    const { client, statuses } = start();
    await waitFor(() => client.getState().accountId !== null, 'snapshot');
    publish('phone_status_changed', phone('a'));
    await waitFor(() => client.getState().seq === 1, 'event 1');
    const [slow] = sockets;
    slow!.emit('statushub:disconnect', { reason: 'slow_consumer', reconnect: true });
    slow!.disconnect(); // "io server disconnect": socket.io-client would not retry by itself
    publish('phone_status_changed', phone('b')); // missed while cut off
    await waitFor(() => client.getState().seq === 2, 'replayed event 2');
    expect(auths.at(-1)).toEqual({ token: 'tok', since: 1 });
    expect(statuses).toEqual(['ready', 'reconnecting', 'ready']);
  });

  it('resyncs on a gap: reconnects with since and fills it', async () => {
    const { client, statuses } = start();
    await waitFor(() => client.getState().accountId !== null, 'snapshot');
    publish('phone_status_changed', phone('a'));
    publish('phone_status_changed', phone('b'), { skip: true }); // never delivered live
    publish('phone_status_changed', phone('c'));
    await waitFor(() => client.getState().seq === 3, 'gap filled');
    expect(auths.at(-1)).toEqual({ token: 'tok', since: 1 });
    expect(statuses).toEqual(['ready', 'reconnecting', 'ready']);
    expect(Object.keys(client.getState().phones).sort()).toEqual(['a', 'b', 'c']);
  });

  it('refreshes an expired token with getToken', async () => {
    const { client, errors } = start('old-token', () => 'fresh-token');
    await waitFor(() => client.status === 'ready', 'connected');
    expect(auths.map((a) => a.token)).toEqual(['old-token', 'fresh-token']);
    expect(errors).toEqual([]);
  });

  it('surfaces other refusals and ends disconnected', async () => {
    const { client, errors } = start('bad', () => 'never-used');
    await waitFor(() => client.status === 'disconnected', 'disconnected');
    expect(errors).toEqual(['invalid token']);
    expect(auths).toHaveLength(1);
  });
});
