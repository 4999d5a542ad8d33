import type { IoFactory, SocketLike } from '../src/client.js';

type Handler = (...args: any[]) => void;

/**
 * A stand-in for a socket.io-client Socket that follows its rules: `active` while it (re)connects
 * by itself, the `auth` function called on each connect attempt, `disconnect()` emitting
 * "io client disconnect" synchronously, a CONNECT_ERROR destroying the socket (no retry).
 */
export class FakeSocket implements SocketLike {
  active = false;
  connected = false;
  connectCalls = 0;
  disconnectCalls = 0;
  /** Every auth payload sent, in order. */
  auths: Array<Record<string, unknown>> = [];
  /** The Manager's events (`reconnect_failed`). */
  readonly io = {
    handlers: new Map<string, Handler[]>(),
    on(event: string, fn: Handler) {
      this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn]);
    },
    emit(event: string) {
      for (const h of this.handlers.get(event) ?? []) h();
    },
  };
  private handlers = new Map<string, Handler[]>();
  private anyHandlers: Handler[] = [];

  constructor(
    readonly url: string,
    readonly options: Record<string, any>,
  ) {}

  on(event: string, fn: Handler) {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn]);
    return this;
  }
  onAny(fn: Handler) {
    this.anyHandlers.push(fn);
    return this;
  }
  connect() {
    this.connectCalls++;
    this.active = true;
    return this;
  }
  disconnect() {
    this.disconnectCalls++;
    const was = this.connected;
    this.active = false;
    this.connected = false;
    if (was) this.emitReserved('disconnect', 'io client disconnect');
    return this;
  }

  // --- server / network side -------------------------------------------------------------

  /** The transport opens: the client sends its auth; returns that payload. */
  open(): Record<string, unknown> {
    if (!this.active) throw new Error('open() on a socket that is not connecting');
    let sent: Record<string, unknown> | undefined;
    this.options.auth((data: Record<string, unknown>) => (sent = data));
    this.auths.push(sent!);
    return sent!;
  }
  /** The hub accepts the connection. */
  accept() {
    this.connected = true;
    this.emitReserved('connect');
  }
  /** open + accept; returns the auth payload. */
  serverConnect(): Record<string, unknown> {
    const auth = this.open();
    this.accept();
    return auth;
  }
  /** The hub refuses the connection (CONNECT_ERROR packet): socket.io-client does not retry. */
  refuse(message: string) {
    this.active = false;
    this.emitReserved('connect_error', new Error(message));
  }
  /** The network drops; socket.io-client will reconnect by itself. */
  drop() {
    this.connected = false;
    this.emitReserved('disconnect', 'transport close');
  }
  /** A connect attempt fails at the transport (socket.io-client may retry: `active` stays). */
  fail(message: string) {
    this.emitReserved('connect_error', new Error(message));
  }
  /** The hub ends the session; socket.io-client does not retry. */
  kick() {
    this.connected = false;
    this.active = false;
    this.emitReserved('disconnect', 'io server disconnect');
  }
  emit(event: string, ...args: unknown[]) {
    if (!this.connected) throw new Error(`emit(${event}) while not connected`);
    for (const h of this.anyHandlers) h(event, ...args);
  }
  private emitReserved(event: string, ...args: unknown[]) {
    for (const h of this.handlers.get(event) ?? []) h(...args);
  }
}

/** An `io` factory that records the sockets it made. */
export function fakeIo() {
  const sockets: FakeSocket[] = [];
  const io: IoFactory = (url, options) => {
    const s = new FakeSocket(url, options);
    sockets.push(s);
    return s;
  };
  return { io, sockets, get socket() { return sockets[0]!; } };
}
