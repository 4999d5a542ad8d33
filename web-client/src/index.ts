export { connect } from './client.js';
export type {
  AnyEventListener,
  ConnectOptions,
  ConnectionStatus,
  EventListener,
  SocketIoOptions,
  StatushubClient,
  Unsubscribe,
} from './client.js';
export { applyEvent, applySnapshot, initialState, reduceData } from './state.js';
export type { EventOutcome, HubState } from './state.js';
export type * from './types.js';
