/**
 * The statushub browser client: Socket.IO connection, auth with resume (`since`), strict seq
 * ordering, connection status and typed listeners.
 */
import { io as socketIo } from 'socket.io-client';
import type { ManagerOptions, SocketOptions } from 'socket.io-client';
import { DISCONNECT_NOTICE } from './disconnect.js';
import { applyEvent, applySnapshot, initialState, isSnapshot } from './state.js';
import { tokenAccount } from './token.js';
import type { HubState } from './state.js';
import type {
  CustomEventData,
  EventMeta,
  HealthChanged,
  HubEvent,
  HubEventMap,
  PhoneStatusChanged,
  StatusSync,
  SyncProgress,
} from './types.js';

export type ConnectionStatus = 'connecting' | 'connected' | 'reconnecting' | 'resumed' | 'disconnected';

export type Unsubscribe = () => void;
export type EventListener<D> = (data: D, meta: EventMeta) => void;
/** Sees every event by name, e.g. for an event log. */
export type AnyEventListener = (event: string, data: unknown, meta: EventMeta) => void;

/** Socket.IO options passed through to `io()`; `auth` and `autoConnect` are the client's own. */
export type SocketIoOptions = Partial<Omit<ManagerOptions & SocketOptions, 'auth' | 'autoConnect'>>;

export interface ConnectOptions {
  /** Hub URL, e.g. `https://status.example.com` (Socket.IO path `/socket.io/`, default namespace). */
  url: string;
  /** Client JWT. */
  token: string;
  /** Called for a fresh token when the hub refuses the current one as expired. */
  getToken?: () => string | Promise<string>;
  socketOptions?: SocketIoOptions;
  /** @internal Socket factory, for tests. Defaults to socket.io-client's `io`. */
  io?: IoFactory;
}

/** @internal The part of a socket.io-client `Socket` the client uses. */
export interface SocketLike {
  readonly active: boolean;
  on(event: string, listener: (...args: any[]) => void): unknown;
  onAny(listener: (event: string, ...args: any[]) => void): unknown;
  connect(): unknown;
  disconnect(): unknown;
  /** The Manager; emits `reconnect_failed` when `reconnectionAttempts` run out. */
  readonly io?: { on(event: string, listener: () => void): unknown };
}

/** @internal */
export type IoFactory = (url: string, options: Partial<ManagerOptions & SocketOptions>) => SocketLike;

export interface StatushubClient {
  /** Current connection status. */
  readonly status: ConnectionStatus;
  /** Listener gets each new status (not the current one); returns unsubscribe. */
  onStatus(listener: (status: ConnectionStatus) => void): Unsubscribe;
  /** Current state; a new object after each change, the same object otherwise. */
  getState(): HubState;
  /** Listener gets the state after each change; returns unsubscribe. */
  subscribe(listener: (state: HubState) => void): Unsubscribe;
  /** Refused connections, failed token refreshes, throwing listeners. */
  onError(listener: (error: Error) => void): Unsubscribe;

  onPhoneStatusChanged(listener: EventListener<PhoneStatusChanged>): Unsubscribe;
  offPhoneStatusChanged(listener: EventListener<PhoneStatusChanged>): void;
  onStatusSync(listener: EventListener<StatusSync>): Unsubscribe;
  offStatusSync(listener: EventListener<StatusSync>): void;
  onHealthChanged(listener: EventListener<HealthChanged>): Unsubscribe;
  offHealthChanged(listener: EventListener<HealthChanged>): void;
  onSyncProgress(listener: EventListener<SyncProgress>): Unsubscribe;
  offSyncProgress(listener: EventListener<SyncProgress>): void;

  /** Any event by name: the hub's own (typed) or a custom one. */
  on<K extends keyof HubEventMap>(event: K, listener: EventListener<HubEventMap[K]>): Unsubscribe;
  on<D = CustomEventData>(event: string, listener: EventListener<D>): Unsubscribe;
  off<K extends keyof HubEventMap>(event: K, listener: EventListener<HubEventMap[K]>): void;
  off<D = CustomEventData>(event: string, listener: EventListener<D>): void;
  /** Every event the named listeners get, in the same order, after them; not snapshots. */
  onAny(listener: AnyEventListener): Unsubscribe;

  /** Disconnects for good; status becomes 'disconnected' and no listener is called again. */
  close(): void;
}

/** Events held while no snapshot has arrived yet (a hub sends the snapshot first; this is a guard). */
const MAX_PENDING = 1000;
/** Consecutive token refreshes that the hub still refuses as expired before giving up. */
const MAX_REFRESHES = 3;
/** Consecutive gap resyncs without an in-order event before giving up. */
const MAX_RESYNCS = 3;
/** A session that lasted this long was healthy: the next cut-off reconnects at once again. */
const CUTOFF_RESET_MS = 30_000;

const toError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

export function connect(options: ConnectOptions): StatushubClient {
  const { url, getToken } = options;
  let token = options.token;
  let state: HubState = initialState;
  let status: ConnectionStatus = 'connecting';
  let everConnected = false;
  let sentSince: number | undefined;
  let closed = false;
  let resyncing = false; // between a gap and the reconnect: ignore everything
  let refreshes = 0;
  let resyncs = 0;
  let pending: HubEvent[] = [];
  let resumeAfterKick = false; // the hub announced that its next disconnect is to be resumed
  let cutoffs = 0; // consecutive cut-offs, for the backoff
  let connectedAt = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;

  const stateListeners = new Set<(s: HubState) => void>();
  const statusListeners = new Set<(s: ConnectionStatus) => void>();
  const errorListeners = new Set<(e: Error) => void>();
  const eventListeners = new Map<string, Set<EventListener<any>>>();
  const anyListeners = new Set<AnyEventListener>();

  const add = <T>(set: Set<T>, listener: T): Unsubscribe => {
    set.add(listener);
    return () => void set.delete(listener);
  };

  function emitError(error: unknown): void {
    const err = toError(error);
    if (errorListeners.size === 0) console.error('[statushub]', err);
    for (const l of [...errorListeners]) {
      try {
        l(err);
      } catch (e) {
        console.error('[statushub] onError listener threw', e);
      }
    }
  }

  function notify<A extends unknown[]>(listeners: Iterable<(...args: A) => void>, ...args: A): void {
    for (const l of [...listeners]) {
      try {
        l(...args);
      } catch (e) {
        emitError(e);
      }
    }
  }

  function setStatus(next: ConnectionStatus): void {
    if (next === status) return;
    status = next;
    notify(statusListeners, next);
  }

  function setState(next: HubState): void {
    if (next === state) return;
    state = next;
    notify(stateListeners, next);
  }

  /** `since` for the next connect: the last seq of the account the current token is for. */
  function currentSince(): number | undefined {
    if (state.accountId === null) return undefined;
    const account = tokenAccount(token);
    return account === undefined || account === state.accountId ? state.seq : undefined;
  }

  const io = options.io ?? (socketIo as unknown as IoFactory);
  const socket = io(url, {
    ...options.socketOptions,
    autoConnect: false, // connect below, once every handler is in place
    // The function form runs on every (re)connect: current token, current since.
    auth: (cb: (data: object) => void) => {
      sentSince = currentSince();
      cb(sentSince === undefined ? { token } : { token, since: sentSince });
    },
  });

  /** Missed events: reconnect at once with `since`; the hub replays the gap or sends a reset snapshot. */
  function resync(): void {
    if (++resyncs > MAX_RESYNCS) {
      emitError(new Error(`statushub: events still missing after ${MAX_RESYNCS} resyncs; giving up`));
      close();
      return;
    }
    resyncing = true;
    setStatus('reconnecting');
    socket.disconnect();
    socket.connect();
  }

  function deliver(ev: HubEvent): void {
    notify(eventListeners.get(ev.event) ?? [], ev.data, ev.meta);
    notify(anyListeners, ev.event, ev.data, ev.meta);
  }

  function handleEvent(ev: HubEvent): void {
    if (resyncing || closed) return;
    const outcome = applyEvent(state, ev);
    switch (outcome.type) {
      case 'applied':
        resyncs = 0;
        setState(outcome.state);
        deliver(ev);
        return;
      case 'foreign':
      case 'invalid': // delivered as they come: they are outside this account's sequence
        deliver(ev);
        return;
      case 'no_baseline':
        if (pending.length < MAX_PENDING) pending.push(ev);
        return;
      case 'gap':
        resync();
        return;
      case 'duplicate':
        return;
    }
  }

  function handleSnapshot(snapshot: unknown): void {
    if (resyncing || closed) return;
    if (!isSnapshot(snapshot)) {
      emitError(new Error('statushub: malformed snapshot ignored'));
      return;
    }
    // A reset means the gap could not be replayed: this is a fresh start, not a resume.
    if (snapshot.reset && status === 'resumed') setStatus('connected');
    setState(applySnapshot(state, snapshot));
    const held = pending;
    pending = [];
    for (const ev of held) handleEvent(ev);
  }

  socket.onAny((event: string, data: unknown, meta: EventMeta) => {
    if (event === 'snapshot') handleSnapshot(data);
    else if (event === DISCONNECT_NOTICE) resumeAfterKick = (data as { reconnect?: unknown })?.reconnect === true;
    else handleEvent({ event, data, meta });
  });

  socket.on('connect', () => {
    if (closed) return;
    resyncing = false;
    resumeAfterKick = false;
    refreshes = 0;
    connectedAt = Date.now();
    setStatus(everConnected && sentSince !== undefined ? 'resumed' : 'connected');
    everConnected = true;
  });

  /**
   * The hub cut this session off (a slow consumer) and asked for a resume. socket.io-client never
   * retries after a server disconnect, so reconnect here: at once the first time, then with
   * socket.io's own backoff settings while the cut-offs keep coming.
   */
  function reconnectAfterCutoff(): void {
    if (Date.now() - connectedAt >= CUTOFF_RESET_MS) cutoffs = 0;
    const base = options.socketOptions?.reconnectionDelay ?? 1000;
    const max = options.socketOptions?.reconnectionDelayMax ?? 5000;
    const delay = cutoffs === 0 ? 0 : Math.min(base * 2 ** (cutoffs - 1), max);
    cutoffs++;
    setStatus('reconnecting');
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      if (!closed) socket.connect();
    }, delay);
  }

  /** socket.io-client retries by itself after a transport drop or a failed attempt; not after the
   * server ended the session ("io server disconnect"), a refusal, or with `reconnection: false`. */
  const retrying = () => socket.active && options.socketOptions?.reconnection !== false;

  socket.on('disconnect', (reason: string) => {
    if (closed || resyncing) return;
    if (reason === 'io server disconnect' && resumeAfterKick && options.socketOptions?.reconnection !== false) {
      resumeAfterKick = false;
      reconnectAfterCutoff();
      return;
    }
    setStatus(retrying() ? 'reconnecting' : 'disconnected');
  });

  socket.io?.on('reconnect_failed', () => {
    if (!closed) setStatus('disconnected');
  });

  socket.on('connect_error', (error: Error) => {
    if (closed) return;
    if (/expired/i.test(error?.message ?? '') && getToken && refreshes < MAX_REFRESHES) {
      refreshes++;
      setStatus(everConnected ? 'reconnecting' : 'connecting');
      Promise.resolve()
        .then(getToken)
        .then(
          (fresh) => {
            if (closed) return;
            token = fresh;
            socket.connect();
          },
          (e: unknown) => {
            if (closed) return;
            emitError(e);
            setStatus('disconnected');
          },
        );
      return;
    }
    // The error first: a status listener that sees 'disconnected' can already tell why.
    emitError(error);
    if (!retrying()) setStatus('disconnected');
  });

  function on(event: string, listener: EventListener<any>): Unsubscribe {
    let set = eventListeners.get(event);
    if (!set) eventListeners.set(event, (set = new Set()));
    return add(set, listener);
  }

  function off(event: string, listener: EventListener<any>): void {
    eventListeners.get(event)?.delete(listener);
  }

  function close(): void {
    if (closed) return;
    closed = true;
    pending = [];
    clearTimeout(retryTimer);
    socket.disconnect();
    setStatus('disconnected');
  }

  socket.connect();

  return {
    get status() {
      return status;
    },
    onStatus: (listener) => add(statusListeners, listener),
    getState: () => state,
    subscribe: (listener) => add(stateListeners, listener),
    onError: (listener) => add(errorListeners, listener),
    onPhoneStatusChanged: (l) => on('phone_status_changed', l),
    offPhoneStatusChanged: (l) => off('phone_status_changed', l),
    onStatusSync: (l) => on('status_sync', l),
    offStatusSync: (l) => off('status_sync', l),
    onHealthChanged: (l) => on('health_changed', l),
    offHealthChanged: (l) => off('health_changed', l),
    onSyncProgress: (l) => on('sync_progress', l),
    offSyncProgress: (l) => off('sync_progress', l),
    on,
    off,
    onAny: (listener) => add(anyListeners, listener),
    close,
  };
}
