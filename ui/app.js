// The presence-cluster dashboard: plain browser JavaScript served by every node at /ui,
// talking to the admin API with the admin key (kept in this tab's sessionStorage only).

const STATUS_NAMES = { 0: 'UNKNOWN', 1: 'ONLINE', 2: 'OFFLINE', 3: 'UNLOGINED' };
const MAX_LOG_LINES = 200;
const $ = (selector) => document.querySelector(selector);

const state = {
  key: sessionStorage.getItem('presence-admin-key') ?? '',
  view: location.hash === '#user' ? 'user' : 'cluster',
  clusterTimer: undefined,
  stream: undefined,
  chartLoaded: false,
  refetch: undefined,
};

function showError(message) {
  const box = $('#error');
  box.textContent = message ?? '';
  box.hidden = !message;
}

async function api(path, signal) {
  const response = await fetch(path, { headers: { authorization: `Bearer ${state.key}` }, signal });
  const body = response.headers.get('content-type')?.includes('json') ? await response.json() : await response.text();
  if (!response.ok) throw new Error(typeof body === 'object' ? `${body.code}: ${body.desc}` : `HTTP ${response.status}`);
  return body;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) tr.append(cell instanceof Node ? wrap('td', cell) : el('td', cell));
  return tr;
}

const seconds = (ms) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
const time = (epochMs) => (epochMs ? new Date(epochMs).toLocaleTimeString() : '—');

/** A stable colour per node id, so a shard keeps its colour while its owner keeps it. */
function colourOf(nodeId) {
  let hash = 0;
  for (const c of nodeId) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 65% 52%)`;
}

function expandRanges(text) {
  const shards = [];
  for (const part of (text ?? '').split(',').filter(Boolean)) {
    const [from, to = from] = part.split('-').map(Number);
    for (let s = from; s <= to; s++) shards.push(s);
  }
  return shards;
}

// ---- cluster view ----

async function refreshCluster() {
  try {
    const view = await api('/admin/cluster');
    showError();
    renderCluster(view);
  } catch (error) {
    showError(`cluster view: ${error.message}`);
  }
}

function renderCluster(view) {
  const nodes = view.nodes ?? [];
  const sum = (field) => nodes.reduce((total, n) => total + (n[field] ?? 0), 0);
  $('#cluster-figures').replaceChildren(
    ...[
      ['transport', view.transport],
      ['nodes', nodes.length],
      ['actors', sum('actors')],
      ['online users', sum('onlineUsers')],
      ['events/s', sum('eventsPerSecond').toFixed(1)],
    ].map(([label, value]) => {
      const box = el('div', undefined, 'figure');
      box.append(el('b', value), el('span', label, 'muted'));
      return box;
    }),
  );
  $('#nodes tbody').replaceChildren(
    ...nodes.map((n) => {
      const name = el('span');
      const swatch = el('i');
      swatch.style.cssText = `display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;background:${colourOf(n.nodeId)}`;
      name.append(swatch, n.nodeId);
      return row([name, n.shards, n.actors ?? 0, n.onlineUsers ?? 0, (n.eventsPerSecond ?? 0).toFixed(1)]);
    }),
  );
  const owner = new Array(view.shardCount ?? 1024).fill(undefined);
  for (const n of nodes) for (const shard of expandRanges(n.ownedShards)) owner[shard] = n.nodeId;
  const grid = $('#shards');
  if (grid.children.length !== owner.length) grid.replaceChildren(...owner.map(() => el('span')));
  owner.forEach((nodeId, shard) => {
    const cell = grid.children[shard];
    cell.style.background = nodeId ? colourOf(nodeId) : '';
    cell.title = `shard ${shard}: ${nodeId ?? 'unowned'}`;
  });
  const unowned = owner.filter((o) => !o).length;
  $('#shard-summary').textContent = `${owner.length} shards, ${unowned} unowned`;
  $('#legend').replaceChildren(
    ...nodes.map((n) => {
      const item = el('span');
      const swatch = el('i');
      swatch.style.background = colourOf(n.nodeId);
      item.append(swatch, `${n.nodeId} (${n.shards})`);
      return item;
    }),
  );
}

// ---- user view ----

async function loadChart() {
  if (state.chartLoaded) return;
  const svg = await api('/admin/chart.svg');
  $('#chart').innerHTML = svg;
  // Each state's SVG group carries `id="state:<dotted path>"` (see src/chart/dot.ts).
  for (const group of document.querySelectorAll('#chart g[id^="state:"]')) group.dataset.stateId = group.id.slice('state:'.length);
  state.chartLoaded = true;
}

/** Highlights the states the actor is in: a nested state and its parent both light up. */
function highlight(activeStates) {
  const active = new Set(activeStates);
  for (const group of document.querySelectorAll('#chart [data-state-id]')) group.classList.toggle('active', active.has(group.dataset.stateId));
  const badge = $('#live-state');
  badge.dataset.state = activeStates.join(' ');
}

function renderInspection(user) {
  highlight(user.activeStates);
  const status = user.status;
  const statusName = el('span', STATUS_NAMES[status.statusType], `st-${status.statusType}`);
  const entries = [
    ['state', JSON.stringify(user.state)],
    ['status', statusName],
    ['custom status', status.customStatus || '—'],
    ['version', status.version],
    ['lastSeenAt', time(status.lastSeenAt)],
    ['actor', user.resident ? 'resident' : 'passivated'],
    ['UserSigs revoked', user.revokedAt ? `issued up to ${time(user.revokedAt)}` : 'never'],
  ];
  $('#user-status').replaceChildren(...entries.flatMap(([k, v]) => [el('dt', k), v instanceof Node ? wrap('dd', v) : el('dd', v)]));
  $('#user-devices tbody').replaceChildren(
    ...(user.devices.length ? user.devices.map((d) => row([d.deviceId, d.platform, d.gatewayId, seconds(d.msLeft)])) : [row(['none', '', '', ''])]),
  );
  $('#user-deadlines').replaceChildren(
    ...(user.deadlines.length ? user.deadlines.map((d) => el('li', `${d.what}: in ${seconds(d.msLeft)} (${time(d.at)})`)) : [el('li', 'none', 'muted')]),
  );
  $('#user-rates tbody').replaceChildren(...user.rateWindows.map((w) => row([w.call, `${w.used} / ${w.limit}`, seconds(w.windowMs)])));
  $('#user-subs-count').textContent = `${user.subscriptions.length} of ${user.subscriptionCap}`;
  $('#user-subs').replaceChildren(...user.subscriptions.map((s) => el('li', `${s.userID} — since ${time(s.subscribedAt)}`)));
}

function wrap(tag, child) {
  const node = document.createElement(tag);
  node.append(child);
  return node;
}

function logTransition(t) {
  const body = $('#transitions tbody');
  body.prepend(
    row([
      new Date(t.at).toLocaleTimeString(),
      t.event,
      JSON.stringify(t.from ?? null),
      JSON.stringify(t.to),
      el('span', STATUS_NAMES[t.statusType], `st-${t.statusType}`),
      t.version,
    ]),
  );
  while (body.children.length > MAX_LOG_LINES) body.lastChild.remove();
}

/** Ends the live view of a user: its stream, its pending re-read, and what it showed. */
function stopWatching() {
  state.stream?.abort();
  state.stream = undefined;
  clearTimeout(state.refetch);
  highlight([]);
  for (const selector of ['#user-status', '#user-devices tbody', '#user-deadlines', '#user-rates tbody', '#user-subs', '#transitions tbody']) {
    $(selector).replaceChildren();
  }
  $('#user-subs-count').textContent = '';
  const badge = $('#live-state');
  badge.textContent = 'not watching';
  badge.classList.remove('live');
}

/** Server-sent events read through fetch, so the admin key travels in a header, not the URL. */
async function watchUser(sdkAppID, userID) {
  // Nothing of the user shown before may stay on show, whether this look-up succeeds or fails.
  stopWatching();
  const controller = new AbortController();
  state.stream = controller;
  const badge = $('#live-state');
  try {
    await loadChart();
    const path = `/admin/apps/${encodeURIComponent(sdkAppID)}/users/${encodeURIComponent(userID)}/events`;
    const response = await fetch(path, { headers: { authorization: `Bearer ${state.key}` }, signal: controller.signal });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(`${body.code ?? response.status}: ${body.desc ?? 'failed'}`);
    }
    showError();
    badge.textContent = 'live';
    badge.classList.add('live');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        onServerEvent(buffer.slice(0, end), sdkAppID, userID, controller);
        buffer = buffer.slice(end + 2);
      }
    }
    throw new Error('the live view ended');
  } catch (error) {
    if (controller.signal.aborted) return;
    showError(`user view: ${error.message}`);
  } finally {
    if (state.stream === controller) {
      badge.textContent = 'not watching';
      badge.classList.remove('live');
    }
  }
}

function onServerEvent(text, sdkAppID, userID, controller) {
  let event = 'message';
  let data = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  const payload = data ? JSON.parse(data) : undefined;
  if (event === 'inspection') renderInspection(payload);
  else if (event === 'transition') {
    logTransition(payload);
    highlight(payload.activeStates);
    scheduleRefetch(sdkAppID, userID, controller);
  } else if (event === 'error') showError(`user view: ${payload.code}: ${payload.desc}`);
}

/**
 * After transitions, re-read the whole actor once things settle (at most ~4 reads a second). A
 * read that comes back after its user's view ended (another user looked up, the view left) is
 * dropped, not drawn over what is on show now.
 */
function scheduleRefetch(sdkAppID, userID, controller) {
  clearTimeout(state.refetch);
  state.refetch = setTimeout(async () => {
    try {
      const user = await api(`/admin/apps/${encodeURIComponent(sdkAppID)}/users/${encodeURIComponent(userID)}`, controller.signal);
      if (!controller.signal.aborted) renderInspection(user);
    } catch (error) {
      if (!controller.signal.aborted) showError(`user view: ${error.message}`);
    }
  }, 250);
}

// ---- wiring ----

function show(view) {
  state.view = view;
  for (const tab of document.querySelectorAll('.tab')) tab.setAttribute('aria-selected', String(tab.dataset.view === view));
  $('#view-cluster').hidden = view !== 'cluster';
  $('#view-user').hidden = view !== 'user';
  // A user view left open would keep its stream, and the watch on the actor it renews.
  if (view !== 'user') stopWatching();
  clearInterval(state.clusterTimer);
  if (view === 'cluster' && state.key) {
    void refreshCluster();
    state.clusterTimer = setInterval(refreshCluster, 1000);
  }
  history.replaceState(null, '', `#${view}`);
}

for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => show(tab.dataset.view));
window.addEventListener('hashchange', () => show(location.hash === '#user' ? 'user' : 'cluster'));

$('#admin-key').value = state.key;
$('#key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.key = $('#admin-key').value.trim();
  sessionStorage.setItem('presence-admin-key', state.key);
  show(state.view);
});

$('#user-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const sdkAppID = $('#user-app').value.trim();
  const userID = $('#user-id').value.trim();
  if (sdkAppID && userID) void watchUser(sdkAppID, userID);
});

show(state.view);
