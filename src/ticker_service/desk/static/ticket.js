// The order ticket: one order, or a batch of legs with its rollback options. The service validates;
// its messages go next to the field they name. Each submit carries an Idempotency-Key that stays the
// same until the ticket changes, so a double click (or a retry after a lost answer) places once.

import { ApiError, NOT_AVAILABLE, Unreachable, describe, get, newIdempotencyKey, optional, request } from './api.js';
import { $, $$, clock, fill, h, num } from './dom.js';
import { clearErrors, formError, numberOf, showErrors, textOf } from './forms.js';

const EXCHANGES = ['NSE', 'NFO', 'BSE', 'BFO', 'CDS', 'MCX'];
const PRODUCTS = ['CNC', 'MIS', 'NRML', 'MTF'];
const TYPES = ['MARKET', 'LIMIT', 'SL', 'SL-M'];
const MAX_LEGS = 20;
const RUNNING = new Set(['running', 'rolling_back']);

const select = (name, field, options, value) => h('select', { name, 'data-field': field },
  options.map((o) => h('option', { value: o, selected: o === value }, o)));

export class Ticket {
  constructor(ctx) {
    this.ctx = ctx;
    this.form = $('#ticket');
    this.legs = $('#legs');
    this.result = $('#ticket-result');
    this.submit = $('#submit-ticket');
    this.another = $('#place-another');
    this.batchOptions = $('#batch-options');
    this.key = null; // the Idempotency-Key of the ticket as it stands
    this.lastTask = null; // what that key placed
    this.busy = false;
    this.mode = 'single';
    for (const radio of $$('input[name="ticket-mode"]')) radio.addEventListener('change', () => this.setMode(radio.value));
    $('#add-leg').addEventListener('click', () => this.addLeg());
    this.form.addEventListener('input', () => this.changed());
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    this.another.addEventListener('click', () => {
      this.changed();
      this.send();
    });
    this.setMode('single');
  }

  /** The ticket changed: the next submit is a new order. */
  changed() {
    this.key = null;
    this.lastTask = null;
    this.another.hidden = true;
  }

  setMode(mode) {
    this.mode = mode;
    const keep = $$('.leg', this.legs).map((leg) => this.legValues(leg));
    this.legs.replaceChildren();
    if (mode === 'single') this.addLeg(keep[0]);
    else (keep.length ? keep : [undefined]).forEach((v) => this.addLeg(v));
    this.batchOptions.hidden = mode !== 'batch';
    this.submit.textContent = mode === 'batch' ? 'Place batch' : 'Place order';
    clearErrors(this.form);
    this.changed();
  }

  /** Prefill the ticket (from the market watch). */
  prefill(exchange, tradingsymbol) {
    const leg = $('.leg', this.legs);
    leg.querySelector('[name=exchange]').value = exchange;
    leg.querySelector('[name=tradingsymbol]').value = tradingsymbol;
    this.hint(leg);
    this.changed();
  }

  addLeg(values = {}) {
    if ($$('.leg', this.legs).length >= MAX_LEGS) return;
    const v = { exchange: 'NSE', transaction_type: 'BUY', product: 'CNC', order_type: 'MARKET', validity: 'DAY', ...values };
    const leg = h('fieldset', { class: 'leg' },
      h('legend', {}, 'Order'),
      h('div', { class: 'fields' },
        h('label', {}, 'Exchange', select('exchange', 'exchange', EXCHANGES, v.exchange)),
        h('label', { class: 'wide' }, 'Symbol', h('input', { name: 'tradingsymbol', 'data-field': 'tradingsymbol',
          list: 'instrument-options', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'characters',
          value: v.tradingsymbol || '' })),
        h('label', {}, 'Side', select('transaction_type', 'transaction_type', ['BUY', 'SELL'], v.transaction_type)),
        h('label', {}, 'Quantity', h('input', { name: 'quantity', 'data-field': 'quantity', inputmode: 'numeric',
          autocomplete: 'off', value: v.quantity ?? '' })),
        h('label', {}, 'Product', select('product', 'product', PRODUCTS, v.product)),
        h('label', {}, 'Type', select('order_type', 'order_type', TYPES, v.order_type)),
        h('label', {}, 'Price', h('input', { name: 'price', 'data-field': 'price', inputmode: 'decimal',
          autocomplete: 'off', value: v.price ?? '' })),
        h('label', {}, 'Trigger', h('input', { name: 'trigger_price', 'data-field': 'trigger_price', inputmode: 'decimal',
          autocomplete: 'off', value: v.trigger_price ?? '' })),
        h('label', {}, 'Validity', select('validity', 'validity', ['DAY', 'IOC'], v.validity)),
        h('label', {}, 'Tag', h('input', { name: 'tag', 'data-field': 'tag', maxlength: 40, autocomplete: 'off',
          spellcheck: 'false', value: v.tag || '' }))),
      h('p', { class: 'hint muted' }),
      h('button', { type: 'button', class: 'secondary remove-leg', onclick: () => {
        leg.remove();
        this.renumber();
        this.changed();
      } }, 'Remove leg'));
    this.legs.append(leg);
    const symbol = leg.querySelector('[name=tradingsymbol]');
    this.ctx.instruments.attach(symbol, $('#instrument-options'));
    symbol.addEventListener('change', () => this.hint(leg, true));
    leg.querySelector('[name=exchange]').addEventListener('change', () => this.hint(leg));
    this.renumber();
    if (v.tradingsymbol) this.hint(leg);
  }

  /** Field names of each leg: bare for one order, orders[i].x for a batch (as the API names them). */
  renumber() {
    $$('.leg', this.legs).forEach((leg, i) => {
      const batch = this.mode === 'batch';
      leg.querySelector('legend').textContent = batch ? `Leg ${i}` : 'Order';
      leg.querySelector('.remove-leg').hidden = !batch || $$('.leg', this.legs).length < 2;
      for (const input of $$('[name]', leg)) input.dataset.field = batch ? `orders[${i}].${input.name}` : input.name;
    });
  }

  /** Lot, tick and last price of the leg's instrument; picks the exchange when the symbol says it. */
  async hint(leg, pickExchange = false) {
    const symbolInput = leg.querySelector('[name=tradingsymbol]');
    const exchange = leg.querySelector('[name=exchange]');
    let text = symbolInput.value.trim().toUpperCase();
    if (text.includes(':')) {
      const [ex, sym] = text.split(':', 2);
      if (EXCHANGES.includes(ex)) exchange.value = ex;
      symbolInput.value = text = sym;
    }
    let found = this.ctx.instruments.find(text, pickExchange ? undefined : exchange.value);
    if (!found && text.length >= 2) {
      try {
        await this.ctx.instruments.search(text);
      } catch {
        /* no hint */
      }
      found = this.ctx.instruments.find(text, pickExchange ? undefined : exchange.value);
    }
    if (found && pickExchange) exchange.value = found.exchange;
    const hint = leg.querySelector('.hint');
    if (!found) {
      fill(hint, '');
      return;
    }
    const about = `${found.name || found.tradingsymbol} · lot ${found.lot_size} · tick ${found.tick_size}`;
    fill(hint, about);
    const name = `${found.exchange}:${found.tradingsymbol}`;
    try {
      const quote = await optional('/quote/ltp', { i: name, account_id: this.ctx.account });
      const last = quote !== NOT_AVAILABLE ? quote[name]?.last_price : found.last_price;
      if (last) fill(hint, `${about} · last ${num(last)}`);
    } catch {
      /* the hint without a price */
    }
  }

  legValues(leg) {
    const value = (name) => leg.querySelector(`[name="${name}"]`);
    const order = {
      exchange: textOf(value('exchange')),
      tradingsymbol: textOf(value('tradingsymbol'))?.toUpperCase(),
      transaction_type: textOf(value('transaction_type')),
      quantity: numberOf(value('quantity')),
      product: textOf(value('product')),
      order_type: textOf(value('order_type')),
      price: numberOf(value('price')),
      trigger_price: numberOf(value('trigger_price')),
      validity: textOf(value('validity')),
      tag: textOf(value('tag')),
    };
    for (const k of Object.keys(order)) if (order[k] === undefined) delete order[k];
    return order;
  }

  body() {
    const legs = $$('.leg', this.legs).map((leg) => this.legValues(leg));
    const account_id = this.ctx.account;
    if (this.mode === 'single') return { ...legs[0], account_id };
    return {
      account_id,
      orders: legs,
      rollback_on_failure: this.form.elements.rollback_on_failure.checked,
      rollback_mode: this.form.elements.rollback_mode.value,
    };
  }

  async send() {
    if (this.busy) return; // the same submit still in flight: its answer will show
    this.busy = true;
    this.submit.disabled = true;
    this.submit.setAttribute('aria-busy', 'true');
    this.key ??= newIdempotencyKey();
    const batch = this.mode === 'batch';
    clearErrors(this.form);
    fill(this.result, h('p', { class: 'muted' }, batch ? 'Placing the batch…' : 'Placing…'));
    this.lastBody = this.body();
    try {
      const { status, data } = await request('POST', batch ? '/advanced/batch-orders' : '/orders/place', {
        body: this.lastBody, query: { wait: batch ? 10 : 5 }, headers: { 'Idempotency-Key': this.key },
      });
      const id = batch ? data.batch_id : data.task_id;
      const again = this.lastTask === id;
      this.lastTask = id;
      this.another.hidden = false;
      if (batch) this.showBatch(data, again);
      else this.showOrder(status, data, again);
    } catch (error) {
      this.failed(error, batch);
    } finally {
      this.busy = false;
      this.submit.disabled = false;
      this.submit.removeAttribute('aria-busy');
    }
  }

  failed(error, batch) {
    if (error instanceof Unreachable) {
      // the answer is lost, not the order: the same key asks again without placing twice
      fill(this.result, h('p', { class: 'error' }, `${error.message}. Submit again: the same Idempotency-Key places it at most once.`));
      return;
    }
    if (error instanceof ApiError && error.status === 422 && (error.body.task_id || error.body.batch_id)) {
      this.lastTask = batch ? error.body.batch_id : error.body.task_id;
      this.another.hidden = false;
      if (batch) this.showBatch(error.body, false);
      else this.showOrder(422, error.body, false);
      return;
    }
    fill(this.result);
    showErrors(this.form, error);
    if (error instanceof ApiError && error.status === 422) {
      fill(this.result, h('p', { class: 'error' }, 'Nothing was placed: fix the fields marked above.'));
    }
  }

  showOrder(status, task, again) {
    const order = task.order || {};
    const lines = [];
    if (again) lines.push(h('p', { class: 'notice' }, 'Already placed with this ticket (same Idempotency-Key): nothing new was sent. Change the ticket, or press “Place another”.'));
    if (status === 201) {
      lines.push(h('p', { class: 'ok' }, `Placed: order ${task.order_id} — ${task.order_status || order.status || ''}`,
        order.filled_quantity ? ` ${order.filled_quantity}/${order.quantity} at ${num(order.average_price)}` : ''));
    } else if (status === 202) {
      lines.push(h('p', {}, `Accepted; waiting for the broker (${task.status}).`));
    } else {
      lines.push(h('p', { class: 'error' }, `Rejected${task.order_id ? ` (order ${task.order_id})` : ''}: ${task.message || task.error || task.detail || ''}`));
    }
    lines.push(h('p', { class: 'muted' }, `task ${task.task_id}`));
    fill(this.result, h('div', { class: 'order-result', dataset: { taskId: task.task_id, orderId: task.order_id || '' } }, lines));
  }

  showBatch(batch, again) {
    const legs = batch.legs || [];
    const sent = this.lastTask === batch.batch_id ? this.lastBody?.orders || [] : [];
    fill(this.result, h('div', { class: 'batch-result', dataset: { batchId: batch.batch_id, status: batch.status } },
      again ? h('p', { class: 'notice' }, 'Already placed with this ticket (same Idempotency-Key): nothing new was sent.') : null,
      h('p', { class: batch.success ? 'ok' : RUNNING.has(batch.status) ? '' : 'error' },
        `Batch ${batch.status}: ${batch.succeeded} of ${batch.total_orders} placed, ${batch.failed} failed.`),
      batch.error ? h('p', { class: 'batch-error' }, batch.error) : null,
      h('div', { class: 'table-wrap' }, h('table', { class: 'grid legs' },
        h('thead', {}, h('tr', {}, ['Leg', 'Symbol', 'Order', 'Status', 'Rollback', 'Message'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, legs.map((leg) => h('tr', { dataset: { leg: leg.index, orderId: leg.order_id || '' } },
          h('td', { class: 'num' }, leg.index),
          h('td', {}, sent[leg.index]?.tradingsymbol || this.ctx.book?.byOrder.get(leg.order_id)?.tradingsymbol || ''),
          h('td', { class: 'order-id' }, leg.order_id || ''),
          h('td', {}, leg.order_status || leg.status.toUpperCase()),
          h('td', { class: 'rollback' }, leg.rollback ? `${leg.rollback.outcome}${leg.rollback.action ? ` (${leg.rollback.action})` : ''}` : ''),
          h('td', { class: 'wrap' }, leg.error || '')))))),
      h('p', { class: 'muted' }, `batch ${batch.batch_id}`, batch.completed_at ? [' · finished ', clock(batch.completed_at)] : '')));
    if (RUNNING.has(batch.status)) this.follow(batch.batch_id);
    else this.loadBatches();
  }

  /** The account's latest batches (GET /advanced/batch-orders, where the service has it). */
  async loadBatches() {
    const box = $('#batches');
    let batches;
    try {
      batches = await optional('/advanced/batch-orders', { account_id: this.ctx.account, limit: 10 });
    } catch (error) {
      fill(box, h('p', { class: 'error' }, describe(error)));
      return;
    }
    if (batches === NOT_AVAILABLE) {
      fill(box, h('p', { class: 'muted not-available' }, 'Batch list: not available on this service.'));
      return;
    }
    if (!batches.length) {
      fill(box, h('p', { class: 'muted' }, 'No batches yet.'));
      return;
    }
    fill(box, h('div', { class: 'table-wrap' }, h('table', { class: 'grid batches' },
      h('thead', {}, h('tr', {}, ['Time', 'Batch', 'Status', 'Placed', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, batches.map((b) => h('tr', { dataset: { batchId: b.batch_id, status: b.status } },
        h('td', {}, clock(b.created_at)),
        h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => this.showBatch(b, false) }, b.batch_id)),
        h('td', {}, h('span', { class: `badge ${b.success ? 'complete' : RUNNING.has(b.status) ? 'open' : 'rejected'}` }, b.status)),
        h('td', { class: 'num' }, `${b.succeeded} / ${b.total_orders}`),
        h('td', { class: 'wrap' }, b.error || '')))))));
  }

  /** A batch still running when the answer came (202): ask again until it has finished. */
  follow(batchId) {
    clearTimeout(this.following);
    this.following = setTimeout(async () => {
      if (this.lastTask !== batchId) return;
      try {
        this.showBatch(await get(`/advanced/batch-orders/${encodeURIComponent(batchId)}`), false);
      } catch (error) {
        formError(this.form, describe(error));
      }
    }, 1000);
  }
}
