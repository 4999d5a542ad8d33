/**
 * The statushub browser client: Socket.IO connection, auth with resume (`since` and its `epoch`), strict seq
 * ordering, one connection state machine (`connecting → ready → reconnecting → ready`, with the
 * last resume kind beside it), classified errors and typed listeners.
 */
import { io as socketIo } from 'socket.io-client';
import type { ManagerOptions, SocketOptions } from 'socket.io-client';
import { DISCONNECT_NOTICE } from './disconnect.js';
import { applyEvent, applySnapshot, initialState, isSnapshot } from './state.js';
import { decodeClaims, tokenAccount } from './token.js';
import type { HubState } from './state.js';
import type {
  CustomEventData,
  EventMeta,
  HealthChanged,
  HubEvent,
  HubEventMap,
  PhoneStatusChanged,
  Presence,
  Snapshot,
  StatusSync,
  SubscriptionFilter,
  SyncProgress,
} from './types.js';
import { StatushubError, errorFromResponse, refusalError, toStatushubError } from './errors.js';
import type { ErrorKind } from './errors.js';

export { StatushubError };
export type { ErrorKind };

/**
 * `connecting` until the hub first accepts, `ready` while connected, `reconnecting` after a drop
 * while the client retries, `disconnected` for good (`close()`, a fatal error, retries gave up).
 */
export type ConnectionState = 'connecting' | 'ready' | 'reconnecting' | 'disconnected';
/** @deprecated The name of {@link ConnectionState} before 0.2. */
export type ConnectionStatus = ConnectionState;
/**
 * How the last (re)connect caught up: `none` on the first connect, `exact` when it resumed with
 * `since` (the hub replays the missed events), `reset` when the state was replaced by a snapshot
 * (the gap was older than the hub retains, or the token names another account).
 */
export type ResumeKind = 'none' | 'exact' | 'reset';

/** The connection at a glance; a new object on each change, the same object otherwise. */
export interface Connection {
  readonly state: ConnectionState;
  readonly lastResume: ResumeKind;
  /** The current error: transient ones clear (become `null`) when the client is ready again. */
  readonly error: StatushubError | null;
}

/** What {@link StatushubClient.onResume} reports after a reconnect. */
export interface ResumeInfo {
  readonly kind: 'exact' | 'reset';
  /** The seq sent as `since` (`undefined` when none was sent). */
  readonly since: number | undefined;
  /** The state's seq now: for `exact` the missed events follow; for `reset` the snapshot's seq. */
  readonly seq: number;
}

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
  /**
   * Only events (and snapshot entries) matching this filter (docs/FILTERS.md). Seqs keep the
   * account's numbering, so the client treats a jump in seq as normal instead of as missed events.
   */
  filter?: SubscriptionFilter;
  socketOptions?: SocketIoOptions;
  /**
   * `false`: create the client without opening the socket; `open()` does (once). The React
   * provider uses this so a render that is thrown away never connects. Default `true`.
   */
  autoConnect?: boolean;
  /** @internal `fetch` for {@link StatushubClient.fetchStatus}; defaults to the global one. */
  fetch?: typeof fetch;
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
  /** The connection state alone (`connection.state`). */
  readonly status: ConnectionState;
  /** Listener gets each new connection state (not the current one); returns unsubscribe. */
  onStatus(listener: (status: ConnectionState) => void): Unsubscribe;
  /** State, last resume kind and current error. */
  readonly connection: Connection;
  /** Listener gets the connection after each change; returns unsubscribe. */
  onConnection(listener: (connection: Connection) => void): Unsubscribe;
  /** The token's account (known before the first snapshot, from the token itself). */
  readonly accountId: string | null;
  /** The token's user (`sub`), or `null` when the token does not say. */
  readonly userId: string | null;
  /** Current state; a new object after each change, the same object otherwise. */
  getState(): HubState;
  /** Listener gets the state after each change; returns unsubscribe. */
  subscribe(listener: (state: HubState) => void): Unsubscribe;
  /**
   * Errors as they happen (`error.kind`: `transient` while the client retries, `fatal` when it
   * stopped, `listener` for a listener that threw), and `null` when the current connection
   * error has cleared (the client is ready again).
   */
  onError(listener: (error: StatushubError | null) => void): Unsubscribe;
  /** After a reconnect: `exact` on the hub's accept of a `since` resume, `reset` once a snapshot replaced the state. */
  onResume(listener: (info: ResumeInfo) => void): Unsubscribe;
  /** A snapshot replaced the state after a reconnect (`reset: true`, or another account): anything may have changed. */
  onReset(listener: (snapshot: Snapshot) => void): Unsubscribe;
  /** `GET /v1/accounts/{account}/status` with the client's current token: the account's snapshot. */
  fetchStatus(accountId?: string): Promise<Snapshot>;
  /** `GET /v1/accounts/{account}/presence`: the account's live connections and the seq each is at. */
  fetchPresence(accountId?: string): Promise<Presence>;
  /** Opens the socket if it is not open yet; idempotent (for `autoConnect: false`). */
  open(): void;

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
  /** True after `close()` (or a fatal error closed it). */
  readonly closed: boolean;
}

/** Events held while no snapshot has arrived yet (a hub sends the snapshot first; this is a guard). */
const MAX_PENDING = 1000;
/** Consecutive token refreshes that the hub still refuses as expired before giving up. */
const MAX_REFRESHES = 3;
/** Consecutive gap resyncs without an in-order event before giving up. */
const MAX_RESYNCS = 3;
/** A session that lasted this long was healthy: the next cut-off reconnects at once again. */
const CUTOFF_RESET_MS = 30_000;


export function connect(options: ConnectOptions): StatushubClient {
  const { url, getToken, filter } = options;
  let token = options.token;
  let state: HubState = initialState;
  let connection: Connection = Object.freeze({ state: 'connecting', lastResume: 'none', error: null });
  let everConnected = false;
  let sentSince: number | undefined;
  let opened = false;
  let closed = false;
  let resyncing = false; // between a gap and the reconnect: ignore everything
  let awaitingSnapshot = false; // a reconnect without `since`: its snapshot replaces the state
  let refreshes = 0;
  let resyncs = 0;
  let pending: HubEvent[] = [];
  let resumeAfterKick = false; // the hub announced that its next disconnect is to be resumed
  let cutoffs = 0; // consecutive cut-offs, for the backoff
  let connectedAt = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;

  const stateListeners = new Set<(s: HubState) => void>();
  const statusListeners = new Set<(s: ConnectionState) => void>();
  const connectionListeners = new Set<(c: Connection) => void>();
  const errorListeners = new Set<(e: StatushubError | null) => void>();
  const resumeListeners = new Set<(r: ResumeInfo) => void>();
  const resetListeners = new Set<(s: Snapshot) => void>();
  const eventListeners = new Map<string, Set<EventListener<any>>>();
  const anyListeners = new Set<AnyEventListener>();

  const add = <T>(set: Set<T>, listener: T): Unsubscribe => {
    set.add(listener);
    return () => void set.delete(listener);
  };

  function tellError(err: StatushubError | null): void {
    if (err && errorListeners.size === 0) console.error('[statushub]', err);
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
        tellError(toStatushubError(e, 'listener', 'listener'));
      }
    }
  }

  /** One place changes the connection; listeners see each change once. */
  function setConnection(next: Partial<Connection>): void {
    const merged = { ...connection, ...next };
    if (merged.state === connection.state && merged.lastResume === connection.lastResume && merged.error === connection.error) return;
    const stateChanged = merged.state !== connection.state;
    connection = Object.freeze(merged);
    if (stateChanged) notify(statusListeners, merged.state);
    notify(connectionListeners, connection);
  }

  const setStatus = (next: ConnectionState): void => setConnection({ state: next });

  /** A connection error: reported, and kept in `connection.error` until it clears. */
  function fail(err: StatushubError, next?: ConnectionState): void {
    tellError(err);
    setConnection(next ? { error: err, state: next } : { error: err });
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
    // The function form runs on every (re)connect: current token, current since and its epoch.
    auth: (cb: (data: object) => void) => {
      sentSince = currentSince();
      const auth: Record<string, unknown> = { token };
      if (sentSince !== undefined) auth.since = sentSince;
      if (sentSince !== undefined && state.epoch !== undefined) auth.epoch = state.epoch;
      if (filter) auth.filter = filter;
      cb(auth);
    },
  });

  /** Missed events: reconnect at once with `since`; the hub replays the gap or sends a reset snapshot. */
  function resync(): void {
    if (++resyncs > MAX_RESYNCS) {
      fail(new StatushubError(`statushub: events still missing after ${MAX_RESYNCS} resyncs; giving up`, 'fatal', 'gave_up'));
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
    const outcome = applyEvent(state, ev, !!filter);
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
      tellError(new StatushubError('statushub: malformed snapshot ignored', 'transient', 'protocol'));
      return;
    }
    // After a reconnect a snapshot replaces the state: a reset, not a resume. So is `reset: true`.
    // Only a state that existed can be reset: the first snapshot is the baseline.
    const reset = (snapshot.reset === true || awaitingSnapshot) && state.accountId !== null;
    awaitingSnapshot = false;
    setState(applySnapshot(state, snapshot));
    if (reset) {
      setConnection({ lastResume: 'reset' });
      notify(resetListeners, snapshot);
      notify(resumeListeners, { kind: 'reset', since: sentSince, seq: state.seq });
    }
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
    const reconnect = everConnected;
    everConnected = true;
    const exact = reconnect && sentSince !== undefined;
    awaitingSnapshot = reconnect && !exact;
    const hadError = connection.error !== null;
    setConnection({ state: 'ready', lastResume: exact ? 'exact' : connection.lastResume, error: null });
    if (hadError) tellError(null);
    if (exact) notify(resumeListeners, { kind: 'exact', since: sentSince, seq: state.seq });
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
    if (retrying()) setStatus('reconnecting');
    else fail(new StatushubError(`statushub: the hub ended the session (${reason})`, 'fatal', 'ended'), 'disconnected');
  });

  socket.io?.on('reconnect_failed', () => {
    if (!closed) fail(new StatushubError('statushub: gave up reconnecting', 'fatal', 'gave_up'), 'disconnected');
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
            fail(toStatushubError(e, 'fatal', 'token_refresh'), 'disconnected');
          },
        );
      return;
    }
    // The error first: a status listener that sees 'disconnected' can already tell why.
    const err = refusalError(error, retrying());
    fail(err, err.fatal ? 'disconnected' : everConnected ? 'reconnecting' : 'connecting');
  });

  function on(event: string, listener: EventListener<any>): Unsubscribe {
    let set = eventListeners.get(event);
    if (!set) eventListeners.set(event, (set = new Set()));
    return add(set, listener);
  }

  function off(event: string, listener: EventListener<any>): void {
    eventListeners.get(event)?.delete(listener);
  }

  function open(): void {
    if (opened || closed) return;
    opened = true;
    socket.connect();
  }

  function close(): void {
    if (closed) return;
    closed = true;
    pending = [];
    clearTimeout(retryTimer);
    socket.disconnect();
    setStatus('disconnected');
  }

  /** `GET /v1/accounts/{account}/{what}` with the current token. */
  async function read<T>(what: string, accountId = tokenAccount(token) ?? state.accountId ?? undefined): Promise<T> {
    if (accountId === undefined) throw new StatushubError('statushub: no account id in the token; pass one', 'fatal', 'bad_request');
    const doFetch = options.fetch ?? globalThis.fetch;
    const base = url.replace(/\/+$/, '');
    const response = await doFetch(`${base}/v1/accounts/${encodeURIComponent(accountId)}/${what}`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    });
    if (!response.ok) throw await errorFromResponse(response);
    return (await response.json()) as T;
  }

  if (options.autoConnect !== false) open();

  return {
    get status() {
      return connection.state;
    },
    get connection() {
      return connection;
    },
    get accountId() {
      return tokenAccount(token) ?? state.accountId;
    },
    get userId() {
      const sub = decodeClaims(token).sub;
      return sub == null ? null : String(sub);
    },
    get closed() {
      return closed;
    },
    onStatus: (listener) => add(statusListeners, listener),
    onConnection: (listener) => add(connectionListeners, listener),
    getState: () => state,
    subscribe: (listener) => add(stateListeners, listener),
    onError: (listener) => add(errorListeners, listener),
    onResume: (listener) => add(resumeListeners, listener),
    onReset: (listener) => add(resetListeners, listener),
    fetchStatus: (accountId) => read<Snapshot>('status', accountId),
    fetchPresence: (accountId) => read<Presence>('presence', accountId),
    open,
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
