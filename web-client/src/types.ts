/**
 * Wire types of the statushub contract (v1), as a browser receives them over Socket.IO.
 *
 * Where the contract names a field but not its JSON type, the choice is noted on the field.
 */

/** Second argument of every event: `socket.on(event, (data, meta) => …)`. */
export interface EventMeta {
  accountId: string;
  /** Per-account sequence number: 1, 2, 3, … without gaps. */
  seq: number;
  /** Unique event id. */
  id: string;
  /** RFC 3339 timestamp. */
  publishedAt: string;
}

/** `phone_status_changed`: a phone connection test was reported. */
export interface PhoneStatusChanged {
  phoneNumberId: string;
  isActive: boolean;
  /** Optional in the phone-test request; `null` when it was not given. */
  qualityRating: string | null;
  /** Optional in the phone-test request; `null` when it was not given. */
  displayPhoneNumber: string | null;
  /** Optional in the phone-test request; `null` when it was not given. */
  verifiedName: string | null;
  /** RFC 3339 (the request's `testedAt`, or the time the hub recorded it). */
  lastTestedAt: string;
  status: 'ACTIVE' | 'INACTIVE';
  /** RFC 3339. */
  timestamp: string;
}

/** A TanStack-Query-style cache key, e.g. `["credential-status", userId]`. */
export type QueryKey = readonly unknown[];

/** `status_sync`: a credential test was reported. */
export interface StatusSync {
  provider: string;
  userId: string;
  success: boolean;
  cacheInvalidated: boolean;
  statusRefreshed: boolean;
  servicesNotified: string[];
  triggeredBy: string;
  /** RFC 3339. */
  timestamp: string;
  error?: string;
  /** Client cache keys to refetch. */
  invalidateQueries: QueryKey[];
  /** The credential test's `requestId`, echoed when the backend gave one. */
  requestId?: string;
}

/** `monitor_removed`: a heartbeat monitor was deleted and left the snapshot (not in the contract; see the hub README). */
export interface MonitorRemoved {
  monitorId: string;
  /** RFC 3339. */
  timestamp: string;
}

export type MonitorHealth = 'unknown' | 'healthy' | 'unhealthy';

/** State of a heartbeat monitor (`health_changed.current`, and the values of `snapshot.monitors`). */
export interface MonitorState {
  health: MonitorHealth;
  /** `null` while the monitor was never checked. */
  latencyMs: number | null;
  httpStatus?: number;
  lastError?: string;
  /** RFC 3339; `null` while the monitor was never checked. */
  lastChecked: string | null;
}

/** `health_changed`: a heartbeat monitor changed state. */
export interface HealthChanged {
  monitorId: string;
  kind: 'status_change' | 'health_change' | 'error_state' | 'recovery';
  source: 'heartbeat' | 'manual' | 'system';
  /** The contract promises `health`; the other fields are as in {@link MonitorState} when present. */
  previous: Partial<MonitorState> & { health: MonitorHealth };
  current: MonitorState;
  /** RFC 3339. */
  timestamp: string;
}

export type SyncStatus = 'idle' | 'running' | 'completed' | 'failed' | 'cancelled';

/** `sync_progress`: a tracked sync job changed. */
export interface SyncProgress {
  syncId: string;
  kind: string;
  status: SyncStatus;
  /** `total` is null until the worker (or the start) reports one. */
  progress: { done: number; total: number | null };
  /** RFC 3339. */
  startedAt: string;
  /** RFC 3339. */
  finishedAt?: string;
  error?: string;
  /** The contract's job fields (sync jobs, `jobs[syncId]`); present when the hub tracks them. */
  attempt?: number;
  results?: unknown;
  /** RFC 3339: when a failed job is retried. */
  nextRetryAt?: string;
  /** RFC 3339: the last report (or the start of the current attempt). */
  updatedAt?: string;
  /** True when the hub re-ran the attempt and no worker has reported on it yet. */
  awaitingWorker?: boolean;
  metadata?: Record<string, unknown>;
  /** Orders one job's events: a higher revision is a newer state. */
  revision?: number;
}

/** `snapshot`: the latest state of an account, and the seq it reflects. */
export interface Snapshot {
  accountId: string;
  seq: number;
  /** Names the account's sequence; changes only when the hub lost the account's history (contract). */
  epoch?: string;
  /** `true` when the requested `since` was older than what the hub retains: drop all old state. */
  reset?: boolean;
  phones: Record<string, PhoneStatusChanged>;
  /** Keyed `{provider}:{userId}`. */
  credentials: Record<string, StatusSync>;
  monitors: Record<string, MonitorState>;
  jobs: Record<string, SyncProgress>;
}

/** Payloads of the events the hub itself emits, by event name. */
export interface HubEventMap {
  phone_status_changed: PhoneStatusChanged;
  status_sync: StatusSync;
  health_changed: HealthChanged;
  sync_progress: SyncProgress;
  monitor_removed: MonitorRemoved;
}

export type HubEventName = keyof HubEventMap;

/** Payload of a custom event published with `POST /v1/accounts/{account}/events`. */
export type CustomEventData = Record<string, unknown>;

/** One received event: name, payload and envelope fields. */
export interface HubEvent<D = unknown> {
  event: string;
  data: D;
  meta: EventMeta;
}

/**
 * One alternative of a subscription filter: an event matches it when every field given matches
 * (docs/FILTERS.md says what each field is compared with). Event names may end in `*` (a prefix).
 */
export interface FilterAlternative {
  events?: string[];
  monitorIds?: string[];
  kinds?: HealthChanged['kind'][];
  healthLevels?: MonitorHealth[];
  phoneIds?: string[];
  providers?: string[];
  syncKinds?: string[];
}

/**
 * A subscription filter: the hub sends only events (and snapshot entries) matching any
 * alternative. Seqs keep the account's numbering, so a filtered client sees gaps, which are normal.
 */
export type SubscriptionFilter = FilterAlternative[];

/** One live connection of an account (`GET /v1/accounts/{account}/presence`). */
export interface PresenceEntry {
  /** The Socket.IO socket id, `ws-N` or `sse-N`; unique per node. */
  connectionId: string;
  accountId: string;
  /** The token's `sub`; `null` for a stream opened with an API key. */
  user: string | null;
  transport: 'socketio' | 'websocket' | 'sse';
  node: string;
  /** RFC 3339. */
  connectedSince: string;
  /** The account's seq the connection is up to date with (a filtered one counts skipped events as seen). */
  lastSeq: number;
  filtered: boolean;
}

/** The account's live connections on every node. */
export interface Presence {
  accountId: string;
  /** The node that answered. */
  node: string;
  connections: PresenceEntry[];
}
