export { connect, StatushubError } from './client.js';
export type {
  AnyEventListener,
  Connection,
  ConnectionState,
  ConnectOptions,
  ConnectionStatus,
  ErrorKind,
  ResumeInfo,
  ResumeKind,
  EventListener,
  SocketIoOptions,
  StatushubClient,
  Unsubscribe,
} from './client.js';
export { DISCONNECT_NOTICE, PEER_REASONS, RECONNECT_REASONS, TERMINAL_REASONS } from './disconnect.js';
export type { DisconnectNotice, DisconnectReason } from './disconnect.js';
export {
  applyEvent,
  applySnapshot,
  credentialKey,
  credentialOf,
  credentialsByProvider,
  eventSection,
  initialState,
  reduceData,
  SECTIONS,
} from './state.js';
export type { EventOutcome, HubState, Section } from './state.js';
export { decodeClaims, tokenAccount } from './token.js';
export type { TokenClaims } from './token.js';
export type * from './types.js';
