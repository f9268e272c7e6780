// The infra dashboard: renders the snapshot, applies live updates from /api/stream, and sends
// emergency actions after a confirmation. Plain JavaScript, no build step.
'use strict';

(() => {
  const $ = (selector) => document.querySelector(selector);
  const TOKEN_KEY = 'infra-dashboard-token';
  const OPERATOR_KEY = 'infra-dashboard-operator';
  const MAX_EXECUTIONS = 200;

  const view = {
    emergency: {},
    fleet: [],
    health: {},
    errors: [],
    actionsEnabled: false,
    offset: 0, // server clock minus ours
  };

  // ---- formatting ---------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child ?? ''));
    return node;
  }

  function duration(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    const h = Math.floor(s / 3600);
    return h < 48 ? `${h}h ${Math.floor((s % 3600) / 60)}m` : `${Math.floor(h / 24)}d ${h % 24}h`;
  }

  function time(ms) {
    if (!ms) return '–';
    return new Date(ms).toLocaleString(undefined, { hour12: false });
  }

  function number(value, digits = 2) {
    return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–';
  }

  const serverNow = () => Date.now() + view.offset;

  // ---- rendering ----------------------------------------------------------------------------

  function renderBanner() {
    const e = view.emergency || {};
    const state = e.state || 'UNKNOWN';
    const banner = $('#banner');
    banner.dataset.state = state;
    $('#banner-state').textContent = state;
    const parts = [`scope ${e.scope || '–'}`];
    if (e.actor) parts.push(`by ${e.actor}`);
    if (e.since_ms) parts.push(`since ${time(e.since_ms)}`);
    if (e.reason) parts.push(`reason: ${e.reason}`);
    if (e.global_state && e.global_state !== state) parts.push(`global ${e.global_state}`);
    if (e.store_unavailable) parts.push('STORE UNAVAILABLE');
    $('#banner-detail').textContent = parts.join(' · ');
    document.title = `[${state}] infra dashboard`;
  }

  function renderErrors() {
    const box = $('#errors');
    box.replaceChildren();
    if (!view.errors.length) {
      box.hidden = true;
      return;
    }
    box.append(el('strong', {}, 'Problem:'), el('ul', {}, ...view.errors.map((error) => el('li', {}, error))));
    box.hidden = false;
  }

  function renderScopes() {
    const select = $('#action-scope');
    const current = select.value;
    const options = [el('option', { value: 'global' }, 'global (every bot)')];
    for (const bot of view.fleet) options.push(el('option', { value: `bot:${bot.bot}` }, `bot:${bot.bot}`));
    select.replaceChildren(...options);
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }

  function renderFleet() {
    const rows = view.fleet.map((bot) => {
      const seen = Date.now() - (bot.heartbeat_age_ms || 0);
      return el('tr', { 'data-bot': bot.bot, 'data-state': bot.state, class: bot.stale ? 'stale' : null },
        el('td', {}, bot.bot),
        el('td', { class: `state state-${bot.state}` }, bot.state),
        el('td', { class: 'age', 'data-seen': seen }, duration(Date.now() - seen)),
        el('td', {}, duration(bot.uptime_ms)),
        el('td', {}, bot.version || '–'),
        el('td', {}, bot.applied_latest_global ? 'yes' : 'NO'));
    });
    $('#fleet tbody').replaceChildren(...rows);
    renderScopes();
    renderLimits();
  }

  function renderLimits() {
    const items = [];
    for (const bot of view.fleet) {
      for (const [name, limit] of Object.entries(bot.limits || {})) {
        const ratio = Number.isFinite(limit.ratio) ? limit.ratio : 0;
        const meter = el('meter', { 'data-bot': bot.bot, 'data-limit': name, min: 0, max: 1, low: 0.8, high: 0.99, optimum: 0, value: Math.min(ratio, 1) });
        const text = limit.used === null || limit.used === undefined
          ? `${Math.round(ratio * 100)}%`
          : `${number(Math.abs(limit.used))} / ${number(Math.abs(limit.limit))} (${Math.round(ratio * 100)}%)`;
        items.push(el('div', { class: 'limit' }, el('span', {}, `${bot.bot} ${name}`), meter, el('span', {}, text)));
      }
    }
    if (!items.length) items.push(el('p', { class: 'note' }, 'no risk limit checked yet'));
    $('#limits').replaceChildren(...items);
  }

  function priceRow(price) {
    const body = $('#prices tbody');
    let row = [...body.rows].find((r) => r.dataset.symbol === price.symbol);
    if (!row) {
      row = el('tr', { 'data-symbol': price.symbol }, el('td', {}, price.symbol), el('td', { class: 'price' }), el('td', { class: 'age' }));
      body.append(row);
    }
    row.dataset.updatedMs = price.received_ms;
    row.title = price.channel;
    row.querySelector('.price').textContent = number(price.price, 4);
    row.querySelector('.age').textContent = duration(serverNow() - price.received_ms);
  }

  function executionItem(x) {
    const trade = x.side ? `${x.side} ${number(x.qty, 4)} @ ${number(x.price, 2)}` : '';
    return el('li', { 'data-outcome': x.outcome, 'data-bot': x.bot },
      `${time(x.at_ms)} · ${x.bot} · ${x.outcome}${trade ? ` · ${trade}` : ''}${x.reason ? ` · ${x.reason}` : ''}`);
  }

  function addExecution(x) {
    const list = $('#executions');
    list.prepend(executionItem(x));
    while (list.children.length > MAX_EXECUTIONS) list.lastElementChild.remove();
  }

  function renderHealth() {
    const h = view.health || {};
    const redis = h.redis || {};
    const name = redis.backend === 'memory' ? 'State store (memory)' : 'Redis';
    $('#health-redis').textContent = redis.reachable
      ? `${name}: reachable, ${number(redis.latency_ms, 2)} ms`
      : `${name}: UNREACHABLE${redis.error ? ` (${redis.error})` : ''}`;
    $('#health-redis').dataset.reachable = String(Boolean(redis.reachable));
    const rows = (h.breakers || []).map((b) => el('tr', { 'data-breaker': `${b.bot}/${b.name}`, 'data-state': b.state },
      el('td', {}, b.bot), el('td', {}, b.name), el('td', {}, b.state)));
    $('#health-breakers tbody').replaceChildren(...rows);
    const ev = h.events || {};
    const problems = (ev.problems || []).length ? ` · ${ev.problems.join('; ')}` : '';
    $('#health-events').textContent = `Events received ${ev.received ?? 0}, dropped ${ev.dropped ?? 0}, gaps ${ev.gaps ?? 0}${problems}`;
  }

  function applyBreaker(change) {
    const breakers = (view.health.breakers ||= []);
    const found = breakers.find((b) => b.bot === change.bot && b.name === change.name);
    if (found) found.state = change.state;
    else breakers.push(change);
    renderHealth();
  }

  function renderAudit(records) {
    const rows = records.map((r) => el('tr', { 'data-seq': r.seq, 'data-scope': r.scope },
      el('td', {}, time(r.at_ms)), el('td', {}, r.actor), el('td', {}, r.action), el('td', {}, r.scope),
      el('td', {}, `${r.from} → ${r.to}`), el('td', {}, r.reason)));
    $('#audit tbody').replaceChildren(...rows);
  }

  async function loadAudit() {
    const params = new URLSearchParams({ scope: $('#audit-scope').value, limit: '100' });
    const bot = $('#audit-bot').value.trim();
    if (bot) params.set('bot', bot);
    try {
      const response = await fetch(`/api/audit?${params}`);
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || response.statusText);
      renderAudit(body);
    } catch (error) {
      $('#audit tbody').replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'error' }, `cannot read the audit log: ${error.message}`)));
    }
  }

  function applySnapshot(s) {
    if (s.now_ms) view.offset = s.now_ms - Date.now();
    view.emergency = s.emergency || {};
    view.fleet = s.fleet || [];
    view.health = s.health || {};
    view.errors = s.errors || [];
    view.actionsEnabled = Boolean(s.actions_enabled);
    $('#actions-note').textContent = view.actionsEnabled ? '' : 'Actions are disabled: no dashboard.token is configured (INFRA_DASHBOARD__TOKEN).';
    renderBanner();
    renderErrors();
    renderFleet();
    renderHealth();
    $('#prices tbody').replaceChildren();
    for (const price of s.prices || []) priceRow(price);
    $('#executions').replaceChildren(...(s.executions || []).map(executionItem));
    if (($('#audit-bot').value.trim() === '') && $('#audit-scope').value === 'all') renderAudit(s.audit || []);
    else loadAudit();
  }

  async function refresh() {
    try {
      const response = await fetch('/api/snapshot');
      if (response.ok) applySnapshot(await response.json());
    } catch (_) { /* the stream status already says */ }
  }

  // ---- live stream --------------------------------------------------------------------------

  function setStream(connected) {
    const status = $('#stream-status');
    status.textContent = connected ? 'live' : 'reconnecting';
    status.dataset.connected = String(connected);
  }

  function connect() {
    const source = new EventSource('/api/stream');
    const on = (name, handle) => source.addEventListener(name, (event) => {
      try { handle(JSON.parse(event.data)); } catch (error) { console.error(name, error); }
    });
    source.onopen = () => setStream(true);
    source.onerror = () => {
      setStream(false);
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    };
    on('snapshot', (s) => { setStream(true); applySnapshot(s); });
    on('price', priceRow);
    on('execution', addExecution);
    on('emergency', (e) => {
      if (e.emergency) {
        view.emergency = e.emergency;
        renderBanner();
      }
      loadAudit();
    });
    on('fleet', (fleet) => { view.fleet = fleet; renderFleet(); });
    on('health', (health) => { view.health = health; renderHealth(); });
    on('breaker', applyBreaker);
    on('errors', (errors) => { view.errors = errors; renderErrors(); });
  }

  // Ages tick here, between updates.
  setInterval(() => {
    for (const row of document.querySelectorAll('#prices tr[data-updated-ms]')) {
      row.querySelector('.age').textContent = duration(serverNow() - Number(row.dataset.updatedMs));
    }
    for (const cell of document.querySelectorAll('#fleet td[data-seen]')) {
      cell.textContent = duration(Date.now() - Number(cell.dataset.seen));
    }
  }, 1000);

  // ---- actions ------------------------------------------------------------------------------

  const dialog = $('#confirm');
  let pending = null;

  const WARNINGS = {
    halt: 'No new orders until a person resumes. Cancels and risk-reducing exits stay allowed.',
    resume: 'Trading starts again.',
    shutdown: 'Nothing at all is sent (not even cancels) until a re-arm and a resume.',
    rearm: 'The scope becomes HALT; trading still needs a resume.',
  };

  function updateOk() {
    $('#confirm-ok').disabled = $('#confirm-reason').value.trim() === '';
  }

  function openConfirm(action) {
    const scope = $('#action-scope').value;
    pending = { action, scope };
    $('#confirm-title').textContent = `${action.toUpperCase()} ${scope}?`;
    $('#confirm-text').textContent = WARNINGS[action] || '';
    $('#confirm-reason').value = '';
    $('#confirm-operator').value = sessionStorage.getItem(OPERATOR_KEY) || $('#confirm-operator').value || '';
    $('#confirm-token').value = sessionStorage.getItem(TOKEN_KEY) || $('#confirm-token').value || '';
    $('#confirm-error').textContent = '';
    $('#confirm-ok').textContent = 'Confirm';
    updateOk();
    dialog.showModal();
    $('#confirm-reason').focus();
  }

  async function submit() {
    if (!pending) return;
    const reason = $('#confirm-reason').value.trim();
    const operator = $('#confirm-operator').value.trim();
    const token = $('#confirm-token').value;
    if (!reason) { $('#confirm-error').textContent = 'a reason is required'; return; }
    if (!operator) { $('#confirm-error').textContent = 'your name is required (it goes in the audit log)'; return; }
    sessionStorage.setItem(OPERATOR_KEY, operator);
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    // Progress shows on the button: `#confirm-error` holds errors only.
    $('#confirm-ok').disabled = true;
    $('#confirm-ok').textContent = 'Sending…';
    $('#confirm-error').textContent = '';
    try {
      const response = await fetch(`/api/emergency/${pending.action}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Infra-Dashboard': '1', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ scope: pending.scope, reason, operator }),
      });
      const body = await response.json().catch(() => ({}));
      $('#confirm-ok').textContent = 'Confirm';
      if (!response.ok) {
        if (response.status === 401) sessionStorage.removeItem(TOKEN_KEY);
        $('#confirm-error').textContent = `${response.status}: ${body.error || response.statusText}`;
        updateOk();
        return;
      }
      $('#actions-note').textContent = body.applied
        ? `${pending.action} of ${pending.scope}: done (${body.from} → ${body.to}, by ${body.actor}).`
        : `${pending.action} of ${pending.scope}: nothing to change (${body.state}: ${body.why}).`;
      pending = null;
      dialog.close();
      refresh();
    } catch (error) {
      $('#confirm-ok').textContent = 'Confirm';
      $('#confirm-error').textContent = `the dashboard did not answer: ${error.message}`;
      updateOk();
    }
  }

  for (const button of document.querySelectorAll('#actions button[data-action]')) {
    button.addEventListener('click', () => openConfirm(button.dataset.action));
  }
  $('#confirm-reason').addEventListener('input', updateOk);
  $('#confirm-cancel').addEventListener('click', () => { pending = null; dialog.close(); });
  $('#confirm-form').addEventListener('submit', (event) => { event.preventDefault(); submit(); });

  let auditTimer = null;
  $('#audit-bot').addEventListener('input', () => { clearTimeout(auditTimer); auditTimer = setTimeout(loadAudit, 300); });
  $('#audit-scope').addEventListener('change', loadAudit);

  // ---- start --------------------------------------------------------------------------------

  try {
    const initial = JSON.parse($('#initial-snapshot').textContent);
    applySnapshot(initial);
  } catch (_) { refresh(); }
  connect();
})();
