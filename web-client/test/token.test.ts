import { describe, expect, it } from 'vitest';
import { DISCONNECT_NOTICE, RECONNECT_REASONS } from '../src/disconnect.js';
import { eventSection, initialState, SECTIONS } from '../src/state.js';
import { decodeClaims, tokenAccount } from '../src/token.js';
import { jwt } from './fixtures.js';

describe('decodeClaims', () => {
  it('reads the claims of a token without verifying it', () => {
    expect(decodeClaims(jwt('acme')).account_id).toBe('acme');
    expect(tokenAccount(jwt('acme'))).toBe('acme');
  });

  it('gives no claims for what is not a token', () => {
    for (const bad of ['', 'garbage', 'a.!!!.c', 'a.bnVsbA.c' /* "null" */, 'a.WzFd.c' /* "[1]" */]) {
      expect(decodeClaims(bad)).toEqual({});
      expect(tokenAccount(bad)).toBeUndefined();
    }
  });
});

describe('sections', () => {
  it('lists every section of the state once', () => {
    expect([...SECTIONS].sort()).toEqual(
      Object.keys(initialState)
        .filter((k) => k !== 'accountId' && k !== 'seq')
        .sort(),
    );
  });

  it('names the section and key an event changes', () => {
    expect(eventSection('phone_status_changed', { phoneNumberId: 'p1' })).toEqual(['phones', 'p1']);
    expect(eventSection('status_sync', { provider: 'meta', userId: 'u1' })).toEqual(['credentials', 'meta:u1']);
    expect(eventSection('status_sync', { provider: 'meta' })).toBeUndefined(); // no user: no entry
    expect(eventSection('health_changed', { monitorId: 7 })).toEqual(['monitors', '7']);
    expect(eventSection('sync_progress', { syncId: 's' })).toEqual(['jobs', 's']);
    expect(eventSection('custom.thing', { phoneNumberId: 'p1' })).toBeUndefined();
    expect(eventSection('phone_status_changed', {})).toBeUndefined();
  });
});

describe('disconnect words', () => {
  it('match the hub', () => {
    expect(DISCONNECT_NOTICE).toBe('statushub:disconnect');
    expect(RECONNECT_REASONS).toContain('slow_consumer');
  });
});
