// Webhooks of the account: create (the secret is shown once), delete, send a test ping, and each
// endpoint's delivery log with replay.

import { describe, get, request } from './api.js';
import { $, clock, confirmButton, fill, h } from './dom.js';
import { clearErrors, showErrors } from './forms.js';

const EVENTS = ['order_placed', 'order_completed', 'order_failed', 'order_cancelled', 'order_rejected', 'order_updated',
  'task_status', 'batch_completed', 'batch_failed', 'batch_rollback_failed'];
const DEFAULT_EVENTS = new Set(['order_placed', 'order_completed', 'order_failed', 'order_cancelled', 'order_rejected']);

export class Webhooks {
  constructor(ctx) {
    this.ctx = ctx;
    this.list = $('#webhooks');
    this.form = $('#webhook-create');
    this.created = $('#webhook-created');
    this.openLogs = new Set(); // webhook ids whose delivery log is shown
    const box = $('#webhook-events');
    box.append(...EVENTS.map((e) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: 'events', value: e, checked: DEFAULT_EVENTS.has(e), 'data-field': 'events' }), ` ${e}`)));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.create();
    });
  }

  /** Read the webhooks (and the open delivery logs); redraw only when something changed, so a
   * half-confirmed Delete survives the screen's refresh. */
  async load(force = false) {
    const account_id = this.ctx.account;
    let hooks;
    let error = null;
    try {
      hooks = await get('/advanced/webhooks', { account_id });
    } catch (e) {
      hooks = [];
      error = describe(e);
    }
    const logs = {};
    await Promise.all(hooks.filter((hook) => this.openLogs.has(hook.webhook_id)).map(async (hook) => {
      try {
        logs[hook.webhook_id] = await get(`/advanced/webhooks/${encodeURIComponent(hook.webhook_id)}/deliveries`, { limit: 50 });
      } catch (e) {
        logs[hook.webhook_id] = describe(e);
      }
    }));
    if (account_id !== this.ctx.account) return;
    const signature = JSON.stringify([account_id, hooks, logs, error]);
    if (!force && signature === this.signature) return;
    this.signature = signature;
    this.hooks = hooks;
    this.logs = logs;
    this.error = error;
    this.render();
  }

  async create() {
    const data = new FormData(this.form);
    const body = { account_id: this.ctx.account, url: String(data.get('url') || '').trim(), events: data.getAll('events') };
    const secret = String(data.get('secret') || '').trim();
    if (secret) body.secret = secret;
    clearErrors(this.form);
    fill(this.created);
    try {
      const hook = (await request('POST', '/advanced/webhooks', { body })).data;
      this.form.elements.url.value = '';
      this.form.elements.secret.value = '';
      fill(this.created, h('p', { class: 'ok' }, `Created ${hook.webhook_id}. Its secret, shown this once: `,
        h('code', { class: 'secret' }, hook.secret || '')));
      await this.load(true);
    } catch (error) {
      showErrors(this.form, error);
    }
  }

  async act(method, path, done) {
    try {
      const answer = (await request(method, path)).data;
      this.ctx.notify(done(answer));
    } catch (error) {
      this.ctx.notify(describe(error));
    }
    await this.load(true);
  }

  render() {
    const hooks = this.hooks || [];
    if (!hooks.length) {
      fill(this.list, h('p', { class: 'muted' }, this.error || 'No webhooks for this account.'));
      return;
    }
    fill(this.list, hooks.map((hook) => this.card(hook)));
  }

  card(hook) {
    const id = encodeURIComponent(hook.webhook_id);
    const shown = this.openLogs.has(hook.webhook_id);
    const toggle = h('button', { type: 'button', class: 'secondary', 'aria-expanded': String(shown), onclick: () => {
      if (shown) this.openLogs.delete(hook.webhook_id);
      else this.openLogs.add(hook.webhook_id);
      this.load(true);
    } }, shown ? 'Hide deliveries' : 'Deliveries');
    return h('article', { class: 'card webhook', dataset: { webhookId: hook.webhook_id } },
      h('h3', {}, h('span', { class: 'url' }, hook.url), ' ',
        h('span', { class: `badge ${hook.active ? 'complete' : 'rejected'}` }, hook.active ? 'active' : 'disabled')),
      hook.disabled_reason ? h('p', { class: 'error' }, hook.disabled_reason) : null,
      h('p', { class: 'muted' }, `${hook.webhook_id} · events: ${hook.events.join(', ')} · created `, clock(hook.created_at),
        hook.failing_since ? [' · failing since ', clock(hook.failing_since)] : null),
      h('div', { class: 'row' },
        toggle,
        h('button', { type: 'button', class: 'secondary', disabled: !hook.active,
          onclick: () => this.act('POST', `/advanced/webhooks/${id}/test`, (d) => `Test ping queued (${d.delivery_id}).`) }, 'Send test'),
        confirmButton('Delete', 'Confirm delete', () => this.act('DELETE', `/advanced/webhooks/${id}`, () => `Deleted ${hook.webhook_id}.`),
          { 'aria-label': `Delete webhook ${hook.webhook_id}` })),
      shown ? this.deliveries(hook, this.logs?.[hook.webhook_id]) : null);
  }

  deliveries(hook, list) {
    const id = encodeURIComponent(hook.webhook_id);
    if (list === undefined) return h('p', { class: 'muted' }, 'Loading…');
    if (typeof list === 'string') return h('p', { class: 'error' }, list);
    if (!list.length) return h('p', { class: 'muted' }, 'No deliveries yet.');
    return h('div', { class: 'table-wrap' }, h('table', { class: 'grid deliveries' },
      h('thead', {}, h('tr', {}, ['Time', 'Event', 'Seq', 'Status', 'Attempts', 'Last answer', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, list.map((d) => h('tr', { dataset: { deliveryId: d.delivery_id, status: d.status } },
        h('td', {}, clock(d.created_at)), h('td', {}, d.event), h('td', { class: 'num' }, d.seq ?? ''),
        h('td', {}, h('span', { class: `badge ${d.status === 'delivered' ? 'complete' : d.status === 'dead' ? 'rejected' : 'open'}` }, d.status)),
        h('td', { class: 'num attempts' }, d.attempts),
        h('td', {}, d.last_status_code ? `HTTP ${d.last_status_code}` : d.last_error || ''),
        h('td', {}, ['delivered', 'dead'].includes(d.status) && hook.active
          ? h('button', { type: 'button', class: 'secondary',
            onclick: () => this.act('POST', `/advanced/webhooks/${id}/deliveries/${encodeURIComponent(d.delivery_id)}/replay`,
              () => `Replaying ${d.delivery_id}.`) }, 'Replay')
          : ''))))));
  }
}
