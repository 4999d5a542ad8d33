import { createElement } from 'react';
import { renderToString } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client.js';
import type { StatushubClient } from '../src/client.js';
import { useStatushub, useStatushubStatus } from '../src/react.js';
import { fakeIo } from './fake-socket.js';
import { meta, phone, snapshot } from './fixtures.js';

function Phones({ client }: { client: StatushubClient }) {
  const state = useStatushub(client);
  const status = useStatushubStatus(client);
  const list = Object.values(state.phones).map((p) => `${p.phoneNumberId}=${p.status}`);
  return createElement('p', null, `${status} seq=${state.seq} ${list.join(',')}`);
}

describe('react hooks', () => {
  it('render the client state and status as they are now', () => {
    const fake = fakeIo();
    const client = connect({ url: 'http://hub.test', token: 't', io: fake.io });
    expect(renderToString(createElement(Phones, { client }))).toBe('<p>connecting seq=0 </p>');
    fake.socket.serverConnect();
    fake.socket.emit('snapshot', snapshot(1, { phones: { a: phone('a') } }));
    fake.socket.emit('phone_status_changed', phone('b', false), meta(2));
    expect(renderToString(createElement(Phones, { client }))).toBe('<p>connected seq=2 a=ACTIVE,b=INACTIVE</p>');
  });
});
