import { describe, expect, it } from 'vitest';
import { connect } from '../src/client.js';
import { applyEvent, applySnapshot, initialState } from '../src/state.js';
import { fakeIo } from './fake-socket.js';
import { meta, phone, snapshot } from './fixtures.js';

function live(seq: number, epoch?: string) {
  const fake = fakeIo();
  const client = connect({ url: 'http://hub.test', token: 'tok-1', io: fake.io });
  fake.socket.serverConnect();
  fake.socket.emit('snapshot', snapshot(seq, epoch === undefined ? {} : { epoch }));
  return { client, socket: fake.socket };
}

describe('epoch', () => {
  it('is stored with the seq from the snapshot and kept across events', () => {
    const state = applySnapshot(initialState, snapshot(5, { epoch: 'e1' }));
    expect(state.epoch).toBe('e1');
    const outcome = applyEvent(state, { event: 'phone_status_changed', data: phone('p1'), meta: meta(6) });
    expect(outcome.type === 'applied' && outcome.state.epoch).toBe('e1');
  });

  it('is sent with since on every reconnect', () => {
    const { socket } = live(5, 'e1');
    socket.emit('phone_status_changed', phone('p1'), meta(6));
    socket.drop();
    expect(socket.serverConnect()).toEqual({ token: 'tok-1', since: 6, epoch: 'e1' });
    socket.drop();
    expect(socket.serverConnect()).toEqual({ token: 'tok-1', since: 6, epoch: 'e1' });
  });

  it('a reset snapshot of a new epoch replaces the one sent next', () => {
    const { socket, client } = live(5, 'e1');
    socket.drop();
    socket.serverConnect();
    socket.emit('snapshot', snapshot(2, { epoch: 'e2', reset: true }));
    expect(client.getState()).toMatchObject({ seq: 2, epoch: 'e2' });
    socket.drop();
    expect(socket.serverConnect()).toEqual({ token: 'tok-1', since: 2, epoch: 'e2' });
  });

  it('is left out when the hub sent none, and with since before any snapshot', () => {
    const { socket } = live(3);
    socket.drop();
    expect(socket.serverConnect()).toEqual({ token: 'tok-1', since: 3 });
    const fake = fakeIo();
    connect({ url: 'http://hub.test', token: 'tok-1', io: fake.io });
    expect(fake.socket.serverConnect()).toEqual({ token: 'tok-1' });
  });
});
