// Health: the service (GET /health), and each account the key may use (GET /accounts): its broker,
// its state (active, token expired, breaker open, not logged in) and its feed. An account that needs
// the broker's login gets a button to the login flow.

import { apiKey, describe, get } from './api.js';
import { clock, fill, h, num } from './dom.js';

const NEEDS_LOGIN = new Set(['token_expired', 'not_logged_in']);
const STATE_TEXT = { active: 'active', token_expired: 'token expired', not_logged_in: 'not logged in',
  breaker_open: 'circuit breaker open' };

const title = (word) => String(word).charAt(0).toUpperCase() + String(word).slice(1);

/** Leave for the broker's login. The key goes in the URL here only: a page navigation cannot carry a header. */
function login(accountId) {
  const url = new URL(`/accounts/${encodeURIComponent(accountId)}/login`, location.origin);
  const key = apiKey.get();
  if (key) url.searchParams.set('api_key', key);
  location.assign(url.toString());
}

export class Health {
  constructor(ctx, box) {
    this.ctx = ctx;
    this.box = box;
  }

  async load() {
    const [health, accounts] = await Promise.allSettled([get('/health'), get('/accounts')]);
    fill(this.box,
      health.status === 'fulfilled' ? this.service(health.value) : h('p', { class: 'error' }, `Service: ${describe(health.reason)}`),
      h('h3', {}, 'Accounts'),
      accounts.status === 'fulfilled'
        ? h('div', { class: 'cards' }, accounts.value.map((a) => this.account(a, health.value?.accounts?.[a.account_id])))
        : h('p', { class: 'error' }, `Accounts: ${describe(accounts.reason)}`));
  }

  service(s) {
    const rows = [
      ['Status', s.status], ['Executor running', s.ticker?.running ? 'yes' : 'no'],
      ['Tasks pending', s.ticker?.tasks_pending], ['Tasks completed', s.ticker?.tasks_completed],
      ['Relay lag', s.relay ? `${num(s.relay.lag_seconds, 3)} s` : '—'], ['Unknown outcomes', s.relay?.unknown],
      ['Dead letters', s.relay?.dead_letter], ['Database', s.database ? `${s.database.status} (${num(s.database.latency_ms)} ms)` : '—'],
      ['Webhook deliveries waiting', s.webhooks?.deliveries_waiting], ['Webhook deliveries dead', s.webhooks?.deliveries_dead],
      ['Instance', s.instance_id], ['Version', s.version],
    ];
    return h('div', { class: 'card service', dataset: { status: s.status } },
      h('h3', {}, 'Service ', h('span', { class: `badge ${s.status === 'ok' ? 'complete' : 'rejected'}` }, s.status)),
      h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === undefined || v === null ? '—' : String(v))])),
      s.problems?.length ? h('ul', { class: 'problems' }, s.problems.map((p) => h('li', {}, p))) : h('p', { class: 'muted' }, 'No problems.'),
      s.ticker?.feeds ? h('p', { class: 'muted' }, 'Feeds: ', Object.entries(s.ticker.feeds).map(([a, f]) => `${a} ${f}`).join(', ')) : null);
  }

  account(a, fromHealth) {
    const state = a.state || fromHealth?.state;
    const feed = a.feed || fromHealth?.feed;
    return h('article', { class: 'card account', dataset: { account: a.account_id, state } },
      h('h4', {}, a.account_id, ' ', h('small', { class: 'muted' }, a.broker), ' ',
        h('span', { class: `badge state ${state === 'active' ? 'complete' : 'rejected'}` }, STATE_TEXT[state] || state)),
      a.reason ? h('p', { class: 'reason' }, a.reason) : null,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Feed'), h('dd', {}, feed ? `${feed.state}${feed.detail ? ` (${feed.detail})` : ''}` : '—'),
        feed?.last_frame_at ? [h('dt', {}, 'Last frame'), h('dd', {}, clock(feed.last_frame_at))] : null,
        h('dt', {}, 'Breaker'), h('dd', {}, state === 'breaker_open' ? 'open' : 'closed'),
        a.user_id ? [h('dt', {}, 'Broker user'), h('dd', {}, a.user_id)] : null,
        a.orders_daily_limit ? [h('dt', {}, 'Orders today'), h('dd', {}, `${a.orders_today ?? 0} of ${a.orders_daily_limit}`)] : null),
      NEEDS_LOGIN.has(state)
        ? h('button', { type: 'button', class: 'login', onclick: () => login(a.account_id) }, `Log in to ${title(a.broker)}`)
        : null);
  }
}
