/**
 * What the hub's status page gets as the global `Statushub` (`npm run build:page` bundles this):
 * the SDK and the monitor history helpers, which apps import apart (`@statushub/client/history`).
 */
export * from './index.js';
export * from './history.js';
