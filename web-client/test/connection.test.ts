/**
 * The connection model: one state machine (connecting → ready → reconnecting → ready) with the
 * last resume kind beside it, onResume/onReset, transient vs fatal errors and their clearing,
 * lazy open(), the account id from the token, and fetchStatus() over real HTTP on loopback.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { connect, StatushubError } from '../src/client.js';
import type { Connection, ConnectOptions, ResumeInfo } from '../src/client.js';
import type { Snapshot } from '../src/types.js';
import { fakeIo } from './fake-socket.js';
import { ACCOUNT, jwt, meta, phone, snapshot } from './fixtures.js';

function setup(opts: Partial<ConnectOptions> = {}) {
  const fake = fakeIo();
  const client = connect({ url: 'http://hub.test', token: jwt(ACCOUNT), io: fake.io, ...opts });
  const connections: Connection[] = [];
  client.onConnection((c) => connections.push(c));
  const errors: Array<StatushubError | null> = [];
  client.onError((e) => errors.push(e));
  const resumes: ResumeInfo[] = [];
  client.onResume((r) => resumes.push(r));
  const resets: Snapshot[] = [];
  client.onReset((s) => resets.push(s));
  return { client, fake, socket: fake.socket, connections, errors, resumes, resets };
}

const states = (cs: Connection[]) => cs.map((c) => `${c.state}/${c.lastResume}${c.error ? `/${c.error.kind}` : ''}`);

describe('connection state machine', () => {
  it('goes connecting → ready → reconnecting → ready with an exact resume beside it', () => {
    const { client, socket, connections, resumes, resets } = setup();
    expect(client.connection).toEqual({ state: 'connecting', lastResume: 'none', error: null });
    socket.serverConnect();
    socket.emit('snapshot', snapshot(5));
    socket.drop();
    expect(socket.serverConnect()).toMatchObject({ since: 5 });
    socket.emit('phone_status_changed', phone('p'), meta(6));
    expect(states(connections)).toEqual(['ready/none', 'reconnecting/none', 'ready/exact']);
    expect(resumes).toEqual([{ kind: 'exact', since: 5, seq: 5 }]);
    expect(resets).toEqual([]);
    // Stays ready across later events: never stuck in a "resumed" that is not "connected".
    expect(client.status).toBe('ready');
  });

  it('a reset snapshot after a resume sets lastResume to reset and tells onReset and onResume', () => {
    const { client, socket, resumes, resets } = setup();
    socket.serverConnect();
    socket.emit('snapshot', snapshot(5));
    socket.drop();
    socket.serverConnect();
    const reset = snapshot(900, { reset: true, phones: { p: phone('p') } });
    socket.emit('snapshot', reset);
    expect(client.connection).toMatchObject({ state: 'ready', lastResume: 'reset' });
    expect(resets).toEqual([reset]);
    expect(resumes.map((r) => r.kind)).toEqual(['exact', 'reset']);
    expect(resumes[1]).toEqual({ kind: 'reset', since: 5, seq: 900 });
  });

  it('the first snapshot is no reset, even with reset: true', () => {
    const { socket, resets, client } = setup();
    socket.serverConnect();
    socket.emit('snapshot', snapshot(3, { reset: true }));
    expect(resets).toEqual([]);
    expect(client.connection.lastResume).toBe('none');
  });

  it('a reconnect whose token names another account gets a snapshot: a reset', () => {
    const { socket, resets, client } = setup({ getToken: () => jwt('other') });
    socket.serverConnect();
    socket.emit('snapshot', snapshot(3));
    socket.drop();
    socket.open();
    socket.refuse('token expired');
    return Promise.resolve().then(async () => {
      await new Promise((r) => setTimeout(r, 0));
      expect(socket.serverConnect()).toEqual({ token: jwt('other') });
      socket.emit('snapshot', { ...snapshot(1), accountId: 'other' });
      expect(resets).toHaveLength(1);
      expect(client.connection.lastResume).toBe('reset');
      expect(client.accountId).toBe('other');
    });
  });
});

describe('errors', () => {
  it('a transport failure while retrying is transient and clears when ready again', () => {
    const { client, socket, errors, connections } = setup();
    socket.serverConnect();
    socket.drop();
    socket.fail('websocket error');
    expect(client.connection.error).toMatchObject({ kind: 'transient', code: 'transport' });
    expect(client.status).toBe('reconnecting');
    socket.serverConnect();
    expect(client.connection.error).toBeNull();
    expect(errors.map((e) => e && e.kind)).toEqual(['transient', null]);
    expect(states(connections)).toEqual(['ready/none', 'reconnecting/none', 'reconnecting/none/transient', 'ready/none']);
  });

  it('an auth refusal is fatal: disconnected, and the error stays', () => {
    const { client, socket, errors } = setup();
    socket.open();
    socket.refuse('unauthorized: invalid token');
    expect(client.status).toBe('disconnected');
    expect(errors[0]).toBeInstanceOf(StatushubError);
    expect(errors[0]).toMatchObject({ kind: 'fatal', code: 'unauthorized', fatal: true });
    expect(client.connection.error?.fatal).toBe(true);
  });

  it('forbidden is fatal with its own code', () => {
    const { socket, errors } = setup();
    socket.open();
    socket.refuse('forbidden: account b is not yours');
    expect(errors[0]).toMatchObject({ kind: 'fatal', code: 'forbidden' });
  });

  it('a throwing listener is a listener error and does not touch the connection', () => {
    const { client, socket, errors } = setup();
    client.onPhoneStatusChanged(() => {
      throw new Error('app bug');
    });
    socket.serverConnect();
    socket.emit('snapshot', snapshot(0));
    socket.emit('phone_status_changed', phone('p'), meta(1));
    expect(errors[0]).toMatchObject({ kind: 'listener', message: 'app bug' });
    expect(client.connection.error).toBeNull();
  });
});

describe('open, account id', () => {
  it('autoConnect: false opens only on open(), and open() twice connects once', () => {
    const { socket, client } = setup({ autoConnect: false });
    expect(socket.connectCalls).toBe(0);
    client.open();
    client.open();
    expect(socket.connectCalls).toBe(1);
    client.close();
    client.open();
    expect(socket.connectCalls).toBe(1);
    expect(client.closed).toBe(true);
  });

  it('knows its account and user from the token before any snapshot', () => {
    const { client } = setup();
    expect(client.accountId).toBe(ACCOUNT);
    expect(client.userId).toBe('user-1');
  });
});

describe('fetchStatus', () => {
  async function server(handler: (path: string, auth: string | undefined) => [number, unknown]) {
    const http = createServer((req, res) => {
      const [status, body] = handler(req.url ?? '', req.headers.authorization);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, close: () => new Promise((r) => http.close(r)) };
  }

  it("GETs the token's account status with the client's token", async () => {
    const seen: string[] = [];
    const s = await server((path, auth) => {
      seen.push(`${path} ${auth}`);
      return [200, snapshot(7)];
    });
    const token = jwt(ACCOUNT);
    const { client } = setup({ url: `${s.url}/`, token, autoConnect: false });
    try {
      expect((await client.fetchStatus()).seq).toBe(7);
      expect(seen).toEqual([`/v1/accounts/${ACCOUNT}/status Bearer ${token}`]);
    } finally {
      await s.close();
    }
  });

  it("turns the hub's error shape into a StatushubError", async () => {
    const s = await server(() => [403, { error: { code: 'forbidden', message: 'not your account' } }]);
    const { client } = setup({ url: s.url, autoConnect: false });
    try {
      const err = await client.fetchStatus('b').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StatushubError);
      expect(err).toMatchObject({ code: 'forbidden', status: 403, message: 'not your account', kind: 'fatal' });
    } finally {
      await s.close();
    }
  });
});
