/**
 * The ways the hub ends a session, mirrored from the hub's `src/disconnect.rs` (a test there
 * checks that every word below matches). The hub sends `DISCONNECT_NOTICE` with
 * `{ reason, reconnect }` just before it ends a session it wants the client to resume.
 */

/** The hub's notice event (Socket.IO event, SSE `event:`). */
export const DISCONNECT_NOTICE = 'statushub:disconnect';

/** The server ended the session and the client should reconnect, resuming with `since`. */
export const RECONNECT_REASONS = ['slow_consumer', 'store_unavailable', 'shutdown', 'ping_timeout'] as const;

/** The server ended the session and reconnecting as-is would fail again. */
export const TERMINAL_REASONS = ['bad_request', 'too_large', 'unauthorized', 'auth_timeout'] as const;

/** The peer side ended it (as the hub's metrics and logs name it). */
export const PEER_REASONS = ['client_closed', 'transport_error', 'gone', 'server_disconnect'] as const;

export type DisconnectReason =
  | (typeof RECONNECT_REASONS)[number]
  | (typeof TERMINAL_REASONS)[number]
  | (typeof PEER_REASONS)[number];

/** The payload of `DISCONNECT_NOTICE`. */
export interface DisconnectNotice {
  reason: DisconnectReason;
  reconnect: boolean;
}
