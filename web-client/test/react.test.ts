import { createElement } from 'react';
import { renderToString } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client.js';
import type { StatushubClient } from '../src/client.js';
import { shallowEqual, StatushubProvider, useConnection, useStatushub } from '../src/react.js';
import { fakeIo } from './fake-socket.js';
import { meta, phone, snapshot } from './fixtures.js';

function Phones() {
  const phones = useStatushub((s) => Object.values(s.phones).map((p) => `${p.phoneNumberId}=${p.status}`), shallowEqual);
  const seq = useStatushub((s) => s.seq);
  const { state, lastResume } = useConnection();
  return createElement('p', null, `${state}/${lastResume} seq=${seq} ${phones.join(',')}`);
}

const page = (client: StatushubClient) => renderToString(createElement(StatushubProvider, { client }, createElement(Phones)));

describe('react hooks', () => {
  it('render the selected slices and the connection as they are now', () => {
    const fake = fakeIo();
    const client = connect({ url: 'http://hub.test', token: 't', io: fake.io });
    expect(page(client)).toBe('<p>connecting/none seq=0 </p>');
    fake.socket.serverConnect();
    fake.socket.emit('snapshot', snapshot(1, { phones: { a: phone('a') } }));
    fake.socket.emit('phone_status_changed', phone('b', false), meta(2));
    expect(page(client)).toBe('<p>ready/none seq=2 a=ACTIVE,b=INACTIVE</p>');
  });

  it('a provider given options creates a lazy client: rendering alone never connects', () => {
    const fake = fakeIo();
    renderToString(createElement(StatushubProvider, { url: 'http://hub.test', token: 't', io: fake.io }, createElement(Phones)));
    expect(fake.sockets.map((s) => s.connectCalls)).toEqual([0]);
  });

  it('hooks outside a provider say what is missing', () => {
    expect(() => renderToString(createElement(Phones))).toThrow(/StatushubProvider/);
  });

  it('shallowEqual compares one level', () => {
    expect(shallowEqual({ a: 1 }, { a: 1 })).toBe(true);
    expect(shallowEqual([1, 2], [1, 2])).toBe(true);
    expect(shallowEqual({ a: {} }, { a: {} })).toBe(false);
  });
});
