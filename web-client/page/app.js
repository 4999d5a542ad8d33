// @ts-check
/**
 * The hub's live status page: one account's phones, credentials, monitors and sync jobs, kept
 * current by the SDK (`Statushub`, from statushub-client.js), plus a log of the events as they
 * arrive. Plain script, no build step, type-checked by `npm run check:page` (tsconfig.page.json).
 *
 * `?monitor=ID` shows just that monitor (its row, its events); each monitor row carries an uptime
 * bar of its recent checks, a latency sparkline (inline SVG) and its 24 h / 30 d uptime, read from
 * the hub's history API and read again when the monitor's health changes, and every 15 s.
 *
 * The token comes from `?token=` (then removed from the address bar so it does not linger in
 * history or screenshots) or from the form, and is kept in sessionStorage: a reload of this tab
 * stays signed in, other tabs and a closed browser do not inherit it.
 */
(() => {
  'use strict';

  const TOKEN_KEY = 'statushub.token';
  const LOG_LIMIT = 500;
  /** Past events shown under a fresh snapshot. */
  const HISTORY = 50;

  /** @typedef {import('../src/index.js').StatushubClient} Client */
  /** @typedef {import('../src/index.js').HubState} HubState */
  /** @typedef {import('../src/index.js').EventMeta} EventMeta */
  /** @typedef {import('../src/index.js').Section} Section */

  /** @param {string} id */
  const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

  /** @type {Client | null} */
  let client = null;
  /** @type {HubState | null} */
  let shown = null;
  /** When each entry last changed, from the events this tab saw (`section:key` -> RFC 3339). */
  const changedAt = new Map();
  let awaitingSnapshot = false;
  /** The connection's current error, from the SDK. @type {import('../src/index.js').StatushubError | null} */
  let lastError = null;

  // ---- token ---------------------------------------------------------------------------------

  const storage = {
    /** @returns {string | null} */
    get() {
      try {
        return sessionStorage.getItem(TOKEN_KEY);
      } catch {
        return null;
      }
    },
    /** @param {string | null} token */
    set(token) {
      try {
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
        else sessionStorage.removeItem(TOKEN_KEY);
      } catch {
        // Storage disabled: the token lives as long as the page.
      }
    },
  };

  /** `?token=` wins over the stored one; it is removed from the address bar at once. */
  function takeToken() {
    const url = new URL(location.href);
    const fromUrl = url.searchParams.get('token');
    if (fromUrl !== null) {
      url.searchParams.delete('token');
      history.replaceState(history.state, '', url.pathname + url.search + url.hash);
      if (fromUrl.trim()) {
        storage.set(fromUrl.trim());
        return fromUrl.trim();
      }
    }
    return storage.get();
  }

  // ---- formatting ----------------------------------------------------------------------------

  /** @param {unknown} iso */
  function relative(iso) {
    const t = typeof iso === 'string' ? Date.parse(iso) : NaN;
    if (Number.isNaN(t)) return '—';
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 5) return 'just now';
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return new Date(t).toLocaleDateString();
  }

  /** @param {unknown} iso */
  function clock(iso) {
    const t = typeof iso === 'string' ? Date.parse(iso) : NaN;
    return Number.isNaN(t) ? '' : new Date(t).toLocaleTimeString([], { hour12: false });
  }

  /**
   * @param {string} tag
   * @param {{ className?: string, text?: unknown, title?: string }} [opts]
   * @param {Node[]} [children]
   */
  function el(tag, opts = {}, children = []) {
    const node = document.createElement(tag);
    if (opts.className) node.className = opts.className;
    if (opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
    if (opts.title) node.title = opts.title;
    node.append(...children);
    return node;
  }

  /** @param {unknown} iso */
  function timeCell(iso) {
    const time = el('time', { text: relative(iso), title: typeof iso === 'string' ? iso : '' });
    if (typeof iso === 'string') {
      time.setAttribute('datetime', iso);
      time.dataset.rel = iso;
    }
    return el('td', { className: 'muted' }, [time]);
  }

  /** @param {unknown} label @param {'ok' | 'bad' | 'info' | ''} tone */
  function pill(label, tone) {
    return el('td', {}, [el('span', { className: `pill ${tone}`.trim(), text: label })]);
  }

  /** @param {unknown} value @param {string} [className] */
  const cell = (value, className) =>
    el('td', { className: className ?? (value == null || value === '' ? 'muted' : ''), text: value == null || value === '' ? '—' : value });

  /**
   * A sync job's progress: a bar (indeterminate while the total is unknown), the counts and the
   * worker's results.
   * @param {any} j
   */
  function progressCell(j) {
    const done = j.progress?.done;
    const total = j.progress?.total;
    if (typeof done !== 'number') return cell(null);
    const bar = el('progress', { className: 'job-bar' });
    if (typeof total === 'number' && total > 0) {
      bar.setAttribute('max', String(total));
      bar.setAttribute('value', String(Math.min(done, total)));
    } else if (j.status === 'completed') {
      bar.setAttribute('max', '1');
      bar.setAttribute('value', '1');
    }
    const results =
      j.results && typeof j.results === 'object'
        ? Object.entries(j.results).map(([name, value]) => `${name} ${value}`).join(', ')
        : '';
    const counts = typeof total === 'number' ? `${done} / ${total}` : String(done);
    return el('td', {}, [bar, el('span', { className: 'muted', text: ` ${counts}${results ? ` · ${results}` : ''}` })]);
  }

  // ---- sections ------------------------------------------------------------------------------

  /** @type {Record<string, 'ok' | 'bad' | 'info' | ''>} */
  const tones = {
    ACTIVE: 'ok', INACTIVE: 'bad',
    healthy: 'ok', unhealthy: 'bad', unknown: '',
    completed: 'ok', failed: 'bad', running: 'info', idle: '', cancelled: '',
  };

  /**
   * How each section shows one entry: its cells and when it last changed (when no event of this
   * tab says so, the entry's own timestamp).
   * @type {Record<Section, { cells: (key: string, e: any) => HTMLElement[], stamp: (e: any) => unknown }>}
   */
  const sections = {
    phones: {
      cells: (key, p) => [
        cell(key, 'id'),
        cell(p.displayPhoneNumber),
        cell(p.verifiedName),
        pill(p.status, tones[p.status] ?? ''),
        cell(p.qualityRating),
        timeCell(p.lastTestedAt),
      ],
      stamp: (p) => p.timestamp,
    },
    // Keyed `{provider}:{userId}`: sorted by key, each provider's users sit together.
    credentials: {
      cells: (key, c) => [
        cell(c.provider ?? key, 'id'),
        cell(c.userId),
        pill(c.success ? 'OK' : 'FAILED', c.success ? 'ok' : 'bad'),
        cell(c.error),
      ],
      stamp: (c) => c.timestamp,
    },
    monitors: {
      // Entries are the monitor's current state; a full health_changed payload is read too.
      cells: (key, m) => {
        const s = m.current ?? m;
        return [
          cell(key, 'id'),
          pill(s.health ?? 'unknown', tones[s.health] ?? ''),
          cell(typeof s.latencyMs === 'number' ? `${s.latencyMs} ms` : null),
          cell(s.httpStatus),
          cell(s.lastError),
          ...historyCells(key),
        ];
      },
      stamp: (m) => m.timestamp ?? (m.current ?? m).lastChecked,
    },
    jobs: {
      cells: (key, j) => [
        cell(key, 'id'),
        cell(typeof j.attempt === 'number' && j.attempt > 1 ? `${j.kind} (attempt ${j.attempt})` : j.kind),
        pill(j.status, tones[j.status] ?? ''),
        progressCell(j),
        cell(j.error ?? (j.nextRetryAt ? `retry at ${j.nextRetryAt}` : null)),
      ],
      stamp: (j) => j.finishedAt ?? j.updatedAt ?? j.startedAt,
    },
  };

  /** @param {Section} name @param {HubState} state @param {Set<string>} flash */
  function renderSection(name, state, flash) {
    const entries = Object.entries(state[name])
      .filter(([key]) => shows(name, key))
      .sort(([a], [b]) => a.localeCompare(b));
    if (name === 'monitors') wantHistory(entries.map(([key]) => key));
    // Each cell carries its column's name: on a narrow screen rows stack and CSS shows it.
    const labels = [...($(name).closest('table')?.querySelectorAll('thead th') ?? [])].map((th) => th.textContent ?? '');
    const rows = entries.map(([key, entry]) => {
      const spec = sections[name];
      const tr = el('tr', {}, [...spec.cells(key, entry), timeCell(changedAt.get(`${name}:${key}`) ?? spec.stamp(entry))]);
      [...tr.children].forEach((td, i) => {
        if (td instanceof HTMLElement && labels[i]) td.dataset.label = labels[i];
      });
      tr.dataset.key = key;
      if (flash.has(`${name}:${key}`)) tr.classList.add('flash');
      return tr;
    });
    $(name).replaceChildren(...rows);
    $(`${name}-count`).textContent = entries.length ? String(entries.length) : '';
    $(`${name}-empty`).hidden = entries.length > 0;
  }

  /** @param {HubState} state @param {Set<string>} [flash] */
  function render(state, flash = new Set()) {
    for (const name of Statushub.SECTIONS) {
      // The reducer keeps untouched maps identical: redraw only what changed.
      if (!shown || shown[name] !== state[name] || shown.accountId !== state.accountId) renderSection(name, state, flash);
    }
    const seq = $('seq');
    seq.hidden = state.accountId === null;
    seq.textContent = `seq ${state.seq}`;
    shown = state;
  }

  // ---- monitor history -----------------------------------------------------------------------

  /** `?monitor=ID`: show just that monitor. */
  const focus = new URL(location.href).searchParams.get('monitor');
  /** Checks in a row's uptime bar (and points of its sparkline). */
  const BAR_SLOTS = 30;
  const HISTORY_REFRESH_MS = 15_000;
  const SVG = 'http://www.w3.org/2000/svg';

  /**
   * What the history API last said of each monitor shown; `null` while the first read runs.
   * @type {Map<string, { checks: import('../src/history.js').MonitorCheck[], uptime: import('../src/history.js').MonitorUptime | null } | null>}
   */
  const monitorHistory = new Map();
  /** Reads under way, and monitors whose history changed again while one ran. */
  const reading = new Set();
  const readAgain = new Set();
  let historyToken = '';
  /** @type {string | null} */
  let historyAccount = null;

  /** @param {Section} name @param {string} key */
  const shows = (name, key) => focus === null || (name === 'monitors' && key === focus);

  /** Starts reading the history of monitors shown for the first time. @param {string[]} ids */
  function wantHistory(ids) {
    for (const id of ids) if (!monitorHistory.has(id)) refreshHistory(id);
  }

  /** Reads a monitor's recent checks and uptime, then redraws its row. @param {string} id */
  function refreshHistory(id) {
    const hub = client;
    if (!hub || historyAccount === null || !shows('monitors', id)) return;
    if (reading.has(id)) {
      readAgain.add(id);
      return;
    }
    if (!monitorHistory.has(id)) monitorHistory.set(id, null);
    reading.add(id);
    const from = { url: location.origin, token: historyToken };
    const account = historyAccount;
    Promise.all([
      Statushub.fetchMonitorHistory(from, account, id, { limit: BAR_SLOTS }),
      Statushub.fetchMonitorUptime(from, account, id),
    ])
      .then(([history, uptime]) => {
        if (client === hub) monitorHistory.set(id, { checks: history.checks, uptime });
      })
      .catch((e) => {
        // A removed monitor has no history; anything else is tried again with the next refresh.
        if (client === hub && e?.status === 404) monitorHistory.delete(id);
      })
      .finally(() => {
        reading.delete(id);
        if (client !== hub) return;
        if (readAgain.delete(id)) refreshHistory(id);
        else renderSection('monitors', hub.getState(), new Set());
      });
  }

  /** @param {string} tag @param {Record<string, string | number>} attrs */
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    return node;
  }

  /** The uptime bar and the latency sparkline of one monitor's recent checks. @param {string} key */
  function historyCells(key) {
    const known = monitorHistory.get(key);
    const checks = known?.checks ?? [];
    const slots = Statushub.uptimeBar(checks, BAR_SLOTS);
    const bar = svg('svg', { class: 'uptime-bar', viewBox: `0 0 ${BAR_SLOTS * 4} 16`, width: BAR_SLOTS * 4, height: 16, role: 'img' });
    slots.forEach((slot, i) => bar.append(svg('rect', { class: slot, x: i * 4, y: 0, width: 3, height: 16, rx: 1 })));
    const up = slots.filter((s) => s === 'up').length;
    const down = slots.filter((s) => s === 'down').length;
    bar.dataset.up = String(up);
    bar.dataset.down = String(down);
    bar.setAttribute('aria-label', `last ${up + down} checks: ${up} passed, ${down} failed`);
    const latencies = checks.map((c) => c.latencyMs);
    const spark = svg('svg', { class: 'sparkline', viewBox: '0 0 120 24', width: 120, height: 24, role: 'img' });
    spark.append(svg('path', { d: Statushub.sparklinePath(latencies, 120, 22) || 'M0 23H120', transform: 'translate(0 1)' }));
    spark.setAttribute('aria-label', latencies.length ? `latency ${Math.min(...latencies)}–${Math.max(...latencies)} ms` : 'no checks yet');
    const uptime = known?.uptime ?? null;
    const figures = el('td', {
      className: uptime ? 'uptime' : 'muted',
      text: uptime ? `${Statushub.formatUptime(uptime.uptime['24h'])} / ${Statushub.formatUptime(uptime.uptime['30d'])}` : '—',
      title: uptime ? `p50 ${uptime.latencyMs.p50 ?? '—'} ms · p95 ${uptime.latencyMs.p95 ?? '—'} ms over 24 h` : '',
    });
    return [el('td', { className: 'history' }, [bar, spark]), figures];
  }

  // ---- event log -----------------------------------------------------------------------------

  /** @param {string} event @param {any} d */
  function summary(event, d) {
    switch (event) {
      case 'phone_status_changed':
        return `${d?.phoneNumberId} → ${d?.status}`;
      case 'status_sync':
        return `${d?.provider} (${d?.userId}): ${d?.success ? 'ok' : 'failed'}${d?.error ? `: ${d.error}` : ''}`;
      case 'health_changed':
        return `${d?.monitorId}: ${d?.previous?.health ?? '?'} → ${d?.current?.health ?? '?'}`;
      case 'sync_progress':
        return `${d?.syncId}: ${d?.status} ${d?.progress?.done ?? '?'}/${d?.progress?.total ?? '?'}`;
      default: {
        const text = JSON.stringify(d) ?? '';
        return text.length > 160 ? `${text.slice(0, 157)}…` : text;
      }
    }
  }

  /** @param {HTMLElement} li */
  function prepend(li) {
    const log = $('log');
    log.prepend(li);
    while (log.childElementCount > LOG_LIMIT) log.lastElementChild?.remove();
  }

  /**
   * @param {string} event @param {unknown} data @param {Partial<EventMeta>} meta
   * @param {'live' | 'history'} source live from the socket, or read back after a snapshot
   */
  function eventItem(event, data, meta, source) {
    const li = el('li', { className: source }, [
      el('span', { className: 'seq-no', text: `#${meta?.seq ?? '?'}` }),
      el('time', { text: clock(meta?.publishedAt), title: String(meta?.publishedAt ?? '') }),
      el('span', { className: 'name', text: event }),
      el('span', { className: 'summary', text: summary(event, data) }),
    ]);
    li.dataset.seq = String(meta?.seq ?? '');
    li.dataset.event = event;
    li.dataset.source = source;
    return li;
  }

  /**
   * After a snapshot the log would start empty: show the account's last events up to the
   * snapshot's seq (`GET /v1/accounts/{account}/events`, read with the same token) below the
   * live ones. Best effort: without them the page is still right, just less chatty.
   * @param {Client} hub @param {string} token @param {string} account @param {number} upTo
   */
  async function loadHistory(hub, token, account, upTo) {
    if (upTo === 0) return;
    const since = Math.max(0, upTo - HISTORY);
    try {
      const res = await fetch(`v1/accounts/${encodeURIComponent(account)}/events?since=${since}&limit=${HISTORY}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (!res.ok || client !== hub) return;
      /** @type {{ events?: Array<{ event: string, data: unknown, seq: number, accountId: string, id: string, publishedAt: string }> }} */
      const body = await res.json();
      if (client !== hub) return;
      const log = $('log');
      const shownSeqs = new Set([...log.querySelectorAll('li[data-seq]')].map((li) => /** @type {HTMLElement} */ (li).dataset.seq));
      const older = (body.events ?? [])
        .filter((e) => e.seq <= upTo && !shownSeqs.has(String(e.seq)))
        .filter((e) => focus === null || Statushub.eventSection(e.event, e.data)?.join(':') === `monitors:${focus}`)
        .reverse();
      log.append(...older.map((e) => eventItem(e.event, e.data, e, 'history')));
    } catch {
      // The live log goes on without the history.
    }
  }

  /** @param {string} text */
  function logSystem(text) {
    const li = el('li', { className: 'sys' }, [
      el('span', { className: 'seq-no' }),
      el('time', { text: clock(new Date().toISOString()) }),
      el('span', { className: 'name', text }),
    ]);
    prepend(li);
  }

  // ---- presence ------------------------------------------------------------------------------

  /** How often the tabs line is read again (also shortly after each change of the state). */
  const PRESENCE_EVERY = 5000;

  /**
   * "3 tabs, all at seq 42", or how many lag behind the furthest one (marked, each named in the
   * tooltip). Filtered tabs count the events they skip as seen, so their seq compares too.
   * @param {import('../src/index.js').Presence} presence
   */
  function showPresence(presence) {
    const tabs = $('tabs');
    const list = presence.connections;
    const head = Math.max(0, ...list.map((c) => c.lastSeq));
    const behind = list.filter((c) => c.lastSeq < head);
    const count = `${list.length} tab${list.length === 1 ? '' : 's'}`;
    tabs.hidden = list.length === 0;
    tabs.classList.toggle('lagging', behind.length > 0);
    tabs.textContent = behind.length === 0
      ? `${count}, ${list.length === 1 ? '' : 'all '}at seq ${head}`
      : `${count}: ${behind.length} behind (at seq ${behind.map((c) => c.lastSeq).join(', ')}, others at ${head})`;
    tabs.title = list
      .map((c) => `${c.transport} · ${c.user ?? 'API key'} · ${c.node}: seq ${c.lastSeq}${c.lastSeq < head ? ' (behind)' : ''}`)
      .join('\n');
  }

  /**
   * Keeps the tabs line current while `hub` is the page's client: every PRESENCE_EVERY, and
   * soon after each state change. Best effort: a failed read leaves the line as it was.
   * @param {Client} hub
   */
  function watchPresence(hub) {
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const read = () => {
      clearTimeout(timer);
      if (client !== hub) return;
      timer = setTimeout(read, PRESENCE_EVERY);
      hub.fetchPresence().then((p) => client === hub && showPresence(p), () => {});
    };
    hub.subscribe(() => {
      clearTimeout(timer);
      timer = setTimeout(read, 500);
    });
    read();
  }

  // ---- connection ----------------------------------------------------------------------------

  /** @type {Record<string, string>} */
  const badgeText = {
    connecting: 'connecting…',
    ready: 'live',
    reconnecting: 'reconnecting…',
    disconnected: 'disconnected',
    'signed-out': 'signed out',
  };
  /** How the last reconnect caught up, next to "live". @type {Record<string, string>} */
  const resumeText = { none: '', exact: ' · resumed', reset: ' · reloaded' };

  /**
   * `data-status` is the SDK's connection state (or `signed-out`), `data-resume` its last resume
   * kind; the text says both in words.
   * @param {string} status @param {string} [resume]
   */
  function setBadge(status, resume = 'none') {
    const badge = $('badge');
    badge.dataset.status = status;
    badge.dataset.resume = resume;
    badge.textContent = (badgeText[status] ?? status) + (status === 'ready' ? resumeText[resume] ?? '' : '');
  }

  /** @param {string | null} error */
  function showSignIn(error) {
    $('dashboard').hidden = true;
    $('signin').hidden = false;
    $('sign-out').hidden = true;
    $('who').textContent = '';
    const box = $('signin-error');
    box.hidden = !error;
    box.textContent = error ?? '';
    /** @type {HTMLTextAreaElement} */ ($('token-input')).focus();
  }

  /** @param {string} token */
  function start(token) {
    // Not verified: the hub verifies the token; a token this page cannot read is still sent and refused there.
    const c = Statushub.decodeClaims(token);
    const account = c.account_id == null ? null : String(c.account_id);
    if (typeof c.exp === 'number' && c.exp * 1000 < Date.now()) {
      storage.set(null);
      showSignIn('This token has expired. Paste a new one.');
      return;
    }
    $('signin').hidden = true;
    $('dashboard').hidden = false;
    // `?monitor=`: only the monitors card, with only that monitor.
    for (const name of Statushub.SECTIONS) {
      const card = $(name).closest('section');
      if (card instanceof HTMLElement) card.hidden = focus !== null && name !== 'monitors';
    }
    $('sign-out').hidden = false;
    const who = $('who');
    who.replaceChildren('account ', el('b', { text: account ?? '?' }), c.sub != null ? ` · ${c.sub}` : '', c.role === 'admin' ? ' · admin' : '');
    document.title = account ? `${account} · statushub` : 'statushub';
    $('log').replaceChildren();
    changedAt.clear();
    monitorHistory.clear();
    historyToken = token;
    historyAccount = account;
    shown = null;
    lastError = null;
    awaitingSnapshot = false;
    let historyLoaded = false;

    const hub = Statushub.connect({
      url: location.origin,
      token,
      // WebSocket first; long-polling when a proxy refuses the upgrade.
      socketOptions: { transports: ['websocket', 'polling'], tryAllTransports: true },
    });
    client = hub;
    setBadge(hub.connection.state, hub.connection.lastResume);
    logSystem('connecting…');

    hub.onConnection(({ state, lastResume }) => setBadge(state, lastResume));
    hub.onStatus((status) => {
      if (status === 'ready') {
        if (hub.connection.lastResume === 'exact') {
          logSystem(`resumed after seq ${hub.getState().seq}`);
        } else {
          // The first connect, or a reconnect without a baseline: a snapshot follows.
          awaitingSnapshot = true;
          logSystem('connected');
        }
      } else if (status === 'reconnecting') {
        logSystem('connection lost; reconnecting…');
      } else if (status === 'disconnected' && client === hub) {
        hub.close();
        client = null;
        const refused = lastError !== null && lastError.fatal && ['unauthorized', 'forbidden', 'expired'].includes(lastError.code);
        // A refused token is forgotten; after any other end, Connect retries with the same one.
        storage.set(refused ? null : token);
        showSignIn(refused ? `The hub refused this token: ${lastError?.message}` : `Disconnected${lastError ? `: ${lastError.message}` : '.'}`);
        if (!refused) /** @type {HTMLTextAreaElement} */ ($('token-input')).value = token;
      }
    });
    hub.onReset((snapshot) => logSystem(`missed events no longer kept: state reloaded at seq ${snapshot.seq}`));
    hub.onError((e) => {
      // Listener bugs are not the connection's; `null` means the last error cleared.
      if (e === null || e.kind !== 'listener') lastError = e;
    });
    hub.onAny((event, data, meta) => {
      const target = Statushub.eventSection(event, data);
      const flash = new Set();
      if (target && meta?.accountId === hub.getState().accountId) {
        const key = `${target[0]}:${target[1]}`;
        changedAt.set(key, meta.publishedAt);
        flash.add(key);
      }
      if (focus !== null && !(target?.[0] === 'monitors' && target[1] === focus)) return;
      if (target?.[0] === 'monitors') refreshHistory(target[1]);
      prepend(eventItem(event, data, meta, 'live'));
      // State listeners already ran with the new state; redraw the touched row to stamp and flash it.
      if (flash.size && target) renderSection(target[0], hub.getState(), flash);
    });
    hub.subscribe((state) => {
      if (awaitingSnapshot) {
        awaitingSnapshot = false;
        logSystem(`snapshot at seq ${state.seq}`);
        if (!historyLoaded && state.accountId !== null) {
          historyLoaded = true;
          void loadHistory(hub, token, state.accountId, state.seq);
        }
      }
      render(state);
    });
    render(hub.getState());
    $('tabs').hidden = true;
    watchPresence(hub);
  }

  function signOut() {
    const c = client;
    client = null;
    c?.close();
    storage.set(null);
    setBadge('signed-out');
    showSignIn(null);
  }

  // ---- wiring --------------------------------------------------------------------------------

  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = /** @type {HTMLTextAreaElement} */ ($('token-input'));
    const token = input.value.trim();
    if (!token) return;
    input.value = '';
    storage.set(token);
    start(token);
  });
  $('sign-out').addEventListener('click', signOut);
  // Uptime bars and figures move with every check, not only with changes of health.
  setInterval(() => {
    if (client) for (const id of monitorHistory.keys()) refreshHistory(id);
  }, HISTORY_REFRESH_MS);
  // Relative times ("12 s ago") stay true without waiting for the next event.
  setInterval(() => {
    for (const t of document.querySelectorAll('time[data-rel]')) {
      if (t instanceof HTMLElement) t.textContent = relative(t.dataset.rel);
    }
  }, 1000);

  const token = takeToken();
  if (token) start(token);
  else showSignIn(null);
})();
