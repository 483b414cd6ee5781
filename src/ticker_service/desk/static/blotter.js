// The blotter: the account's orders, live. Filters, an order's events and trades, modify, cancel.

import { NOT_AVAILABLE, describe, get, newIdempotencyKey, optional, request } from './api.js';
import { Book } from './book.js';
import { $, clock, confirmButton, fill, h, num } from './dom.js';
import { clearErrors, numberOf, showErrors, textOf } from './forms.js';

const SHOWN = 500; // rows drawn at most; the filters find the others
const statusClass = (s) => s.toLowerCase().replace(/[^a-z]+/g, '-');

/** Make `parent`'s children exactly `nodes`, moving only what moved (focus stays where it was). */
function place(parent, nodes) {
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
  while (parent.children.length > nodes.length) parent.lastChild.remove();
}

export class Blotter {
  constructor(ctx) {
    this.ctx = ctx;
    this.table = $('#blotter tbody');
    this.filters = $('#blotter-filters');
    this.count = $('#blotter-count');
    this.dialog = $('#order-dialog');
    this.detail = $('#order-detail');
    this.open = null; // the row shown in the dialog
    this.drawn = new Map(); // row key -> {v, tr}: a row is drawn again only when it changed
    this.filters.addEventListener('input', () => this.render());
    this.filters.addEventListener('submit', (e) => e.preventDefault());
    this.dialog.querySelector('.close-dialog').addEventListener('click', () => this.dialog.close());
    this.dialog.addEventListener('close', () => (this.open = null));
  }

  criteria() {
    const data = new FormData(this.filters);
    return { status: data.get('status') || '', symbol: data.get('symbol') || '', tag: data.get('tag') || '' };
  }

  render() {
    const book = this.ctx.book;
    if (!book) return;
    const rows = book.select(this.criteria());
    const lines = rows.slice(0, SHOWN).map((row) => {
      let drawn = this.drawn.get(row.key);
      if (!drawn || drawn.v !== row.v) {
        drawn = { v: row.v, tr: this.line(row) };
        this.drawn.set(row.key, drawn);
      }
      return drawn.tr;
    });
    if (!lines.length) lines.push(h('tr', {}, h('td', { colspan: 10, class: 'muted' }, 'No orders.')));
    place(this.table, lines);
    fill(this.count, rows.length > SHOWN ? `newest ${SHOWN} of ${rows.length} orders` : `${rows.length} order${rows.length === 1 ? '' : 's'}`);
    const open = this.open;
    if (open && this.dialog.open && this.openVersion !== open.v) {
      // a new fill: its trade is new too
      if (open.order_id && open.filled_quantity !== this.tradesAt) this.loadTrades(open);
      this.renderDetail(open);
    }
  }

  /** Forget what was drawn (another account). */
  reset() {
    this.drawn.clear();
    this.table.replaceChildren();
    if (this.dialog.open) this.dialog.close();
  }

  line(row) {
    const status = Book.status(row);
    const side = row.transaction_type || '';
    const symbol = row.tradingsymbol ? `${row.tradingsymbol}` : row.task_id || row.key;
    return h('tr', { dataset: { key: row.key, orderId: row.order_id || '', status } },
      h('td', { class: 'wide-only' }, clock(row.order_timestamp || row.events[0]?.at)),
      h('td', {}, h('button', { type: 'button', class: 'link', title: 'Events and trades',
        onclick: () => this.show(row) }, symbol), row.exchange ? h('small', { class: 'muted wide-only' }, ` ${row.exchange}`) : null),
      h('td', { class: side === 'BUY' ? 'up' : side === 'SELL' ? 'down' : '' }, side),
      h('td', { class: 'num' }, row.quantity !== undefined ? `${row.filled_quantity ?? 0} / ${row.quantity}` : ''),
      h('td', { class: 'wide-only' }, row.order_type || ''),
      h('td', { class: 'num wide-only' }, row.price ? num(row.price) : row.trigger_price ? num(row.trigger_price) : ''),
      h('td', { class: 'num wide-only' }, row.average_price ? num(row.average_price) : ''),
      h('td', {}, h('span', { class: `badge ${statusClass(status)}`, title: row.status_message || row.message || '' }, status)),
      h('td', { class: 'wide-only' }, row.tag || ''),
      h('td', { class: 'actions' }, Book.isOpen(row) ? h('span', {},
        h('button', { type: 'button', class: 'secondary', onclick: () => this.show(row, true) }, 'Modify'),
        this.cancelButton(row)) : null),
    );
  }

  cancelButton(row) {
    return confirmButton('Cancel', 'Confirm cancel', async () => {
      try {
        await request('DELETE', `/orders/${encodeURIComponent(row.order_id)}`, {
          query: { account_id: this.ctx.account, wait: 5 },
          headers: { 'Idempotency-Key': newIdempotencyKey() },
        });
      } catch (error) {
        this.ctx.notify(`Cancel of ${row.order_id} refused: ${describe(error)}`);
      }
    }, { 'aria-label': `Cancel order ${row.order_id}` });
  }

  /** The order's fields, its events as the stream brought them, its trades, and modify/cancel. */
  show(row, modify = false) {
    this.open = row;
    this.trades = undefined;
    this.renderDetail(row);
    if (!this.dialog.open) this.dialog.showModal();
    if (row.order_id) this.loadTrades(row);
    if (modify) $('#modify-order [data-field="price"]', this.detail)?.focus();
    if (!row.tradingsymbol && row.task_id) get(`/tasks/${encodeURIComponent(row.task_id)}`).then((t) => this.ctx.book.loadTask(t), () => {});
  }

  async loadTrades(row) {
    this.tradesAt = row.filled_quantity;
    try {
      const trades = await optional(`/orders/${encodeURIComponent(row.order_id)}/trades`, { account_id: this.ctx.account });
      this.trades = trades;
    } catch (error) {
      this.trades = error;
    }
    if (this.open === row) this.renderDetail(row);
  }

  renderDetail(row) {
    this.openVersion = row.v;
    $('#h-order').textContent = `${row.transaction_type || ''} ${row.tradingsymbol || ''} ${row.order_id ? '· ' + row.order_id : ''}`.trim() || 'Order';
    const facts = [
      ['Status', Book.status(row)], ['Message', row.status_message || row.message], ['Quantity', row.quantity],
      ['Filled', row.filled_quantity], ['Pending', row.pending_quantity], ['Type', row.order_type],
      ['Product', row.product], ['Price', row.price], ['Trigger', row.trigger_price], ['Average', row.average_price],
      ['Validity', row.validity], ['Tag', row.tag], ['Broker tag', row.broker_tag], ['Task', row.task_id],
    ].filter(([, v]) => v !== undefined && v !== null && v !== '');
    fill(this.detail,
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))])),
      Book.isOpen(row) ? this.modifyForm(row) : null,
      h('h3', {}, 'Events'),
      row.events.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'grid events' },
          h('thead', {}, h('tr', {}, ['Seq', 'Time', 'Event', 'Status', 'Filled', 'Message'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, row.events.map((e) => h('tr', { dataset: { seq: e.seq } },
            h('td', { class: 'num' }, e.seq), h('td', {}, clock(e.at)),
            h('td', {}, e.event === 'task_status' && e.operation && e.operation !== 'place_order' ? `${e.event} (${e.operation})` : e.event),
            h('td', {}, e.status || ''), h('td', { class: 'num' }, e.filled ?? ''), h('td', {}, e.message || ''))))))
        : h('p', { class: 'muted' }, 'No events seen for this order since the desk opened.'),
      h('h3', {}, 'Trades'),
      this.tradesView(row),
    );
  }

  tradesView(row) {
    if (!row.order_id) return h('p', { class: 'muted' }, 'No order yet.');
    if (this.trades === undefined) return h('p', { class: 'muted' }, 'Loading…');
    if (this.trades === NOT_AVAILABLE) return h('p', { class: 'muted not-available' }, 'Trades: not available on this service.');
    if (this.trades instanceof Error) return h('p', { class: 'error' }, describe(this.trades));
    const trades = Array.isArray(this.trades) ? this.trades : this.trades?.data || [];
    if (!trades.length) return h('p', { class: 'muted' }, 'No trades.');
    return h('div', { class: 'table-wrap' }, h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, ['Trade', 'Time', 'Qty', 'Price', 'Charges'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, trades.map((t) => h('tr', {},
        h('td', {}, t.trade_id || ''), h('td', {}, t.fill_timestamp || t.exchange_timestamp || ''),
        h('td', { class: 'num' }, t.quantity ?? ''), h('td', { class: 'num' }, num(t.average_price ?? t.price)),
        h('td', { class: 'num', title: t.charges ? Object.entries(t.charges).map(([k, v]) => `${k} ${v}`).join(', ') : null },
          t.charges ? num(t.charges.total) : '—'))))));
  }

  modifyForm(row) {
    // keep what the user is typing when the row re-renders on a new event
    const existing = $('#modify-order', this.detail);
    if (existing && existing.dataset.orderId === row.order_id) return existing;
    const field = (name, label, value, attrs = {}) => h('label', {}, label,
      h('input', { name, 'data-field': name, inputmode: 'decimal', value: value ?? '', autocomplete: 'off', ...attrs }));
    const form = h('form', { id: 'modify-order', class: 'row', novalidate: true, dataset: { orderId: row.order_id } },
      h('p', { class: 'form-error', hidden: true }),
      field('quantity', 'Quantity', row.quantity, { inputmode: 'numeric' }),
      field('price', 'Price', row.price || ''),
      field('trigger_price', 'Trigger', row.trigger_price || ''),
      h('label', {}, 'Type', h('select', { name: 'order_type', 'data-field': 'order_type' },
        ['LIMIT', 'MARKET', 'SL', 'SL-M'].map((t) => h('option', { value: t, selected: t === row.order_type }, t)))),
      h('button', { type: 'submit' }, 'Modify'),
      this.cancelButton(row),
      h('p', { class: 'muted modify-result', role: 'status' }));
    let key = null;
    form.addEventListener('input', () => (key = null));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const submit = form.querySelector('button[type=submit]');
      if (submit.disabled) return;
      key ??= newIdempotencyKey();
      const body = {};
      const inputs = form.elements;
      const quantity = numberOf(inputs.quantity);
      if (quantity !== undefined && quantity !== row.quantity) body.quantity = quantity;
      for (const name of ['price', 'trigger_price']) {
        const value = numberOf(inputs[name]);
        if (value !== undefined && value !== row[name]) body[name] = value;
      }
      const type = textOf(inputs.order_type);
      if (type && type !== row.order_type) body.order_type = type;
      clearErrors(form);
      submit.disabled = true;
      try {
        const { data } = await request('PUT', `/orders/${encodeURIComponent(row.order_id)}`, {
          body, query: { account_id: this.ctx.account, wait: 5 }, headers: { 'Idempotency-Key': key },
        });
        $('.modify-result', form).textContent = `Modification ${data.status}${data.message ? ': ' + data.message : ''}`;
      } catch (error) {
        showErrors(form, error);
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }
}
