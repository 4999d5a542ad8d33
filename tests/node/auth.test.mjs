// Authentication on the Socket.IO connect: bad tokens are refused with a
// connect_error that says why; the socket never connects and gets no data.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openTab, connectTab, mintToken, cliToken, uid } from './harness.mjs';

const now = () => Math.floor(Date.now() / 1000);

test('bad tokens are refused with connect_error; CLI and HS256 tokens connect', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const account = uid('acct');

  const refusals = [
    {
      what: 'forged token (wrong secret)',
      token: mintToken(`not-${server.secret}`, { sub: 'u1', account_id: account }),
      message: /signature|invalid/i,
    },
    {
      what: 'expired token',
      token: mintToken(server.secret, { sub: 'u1', account_id: account, iat: now() - 7200, exp: now() - 3600 }),
      message: /expired/i,
    },
    {
      what: 'token without account_id',
      token: mintToken(server.secret, { sub: 'u1' }),
      message: /account/i,
    },
    {
      what: 'token without exp',
      token: mintToken(server.secret, { sub: 'u1', account_id: account }, { omitExp: true }),
      message: /exp|invalid|token/i,
    },
    { what: 'not a JWT', token: 'definitely.not.a-jwt', message: /invalid|token|malformed/i },
    { what: 'no token at all', token: null, message: /token/i },
  ];

  for (const transports of [['websocket'], ['polling']]) {
    await t.test(`refused over ${transports[0]}`, async () => {
      for (const { what, token, message } of refusals) {
        const tab = openTab(server, { token, transports, name: `${what} [${transports[0]}]` });
        const err = await tab.waitRefused();
        assert.match(err.message, message, `${what}: connect_error message "${err.message}"`);
        assert.equal(tab.socket.connected, false, `${what}: socket must not be connected`);
        assert.equal(tab.connects, 0, `${what}: connect must never fire`);
        assert.deepEqual(tab.events, [], `${what}: no snapshot or event may reach a refused socket`);
        tab.close();
      }
    });
  }

  // The refusals above were not caused by some general breakage: good tokens work.
  await t.test('a token minted by `statushub token` connects', async () => {
    const token = await cliToken(server.secret, { account, user: 'cli-user', ttl: '1h' });
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'the CLI prints a compact JWT');
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    assert.equal(claims.account_id, account);
    assert.equal(claims.sub, 'cli-user');
    assert.ok(claims.exp > now() && claims.exp <= now() + 3600 + 5, `exp about 1h ahead: ${claims.exp}`);

    const tab = await connectTab(server, { token, transports: ['websocket'], name: 'cli token' });
    const snap = await tab.waitForEvent('snapshot');
    assert.equal(snap.data.accountId, account);
    assert.deepEqual(tab.connectErrors, []);
  });

  await t.test('an HS256 token minted with the secret connects over polling', async () => {
    const token = mintToken(server.secret, { sub: 'node-user', account_id: account });
    const tab = await connectTab(server, { token, transports: ['polling'], name: 'node token' });
    const snap = await tab.waitForEvent('snapshot');
    assert.equal(snap.data.accountId, account);
  });
});
