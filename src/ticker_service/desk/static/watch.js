// The market watch: the account's stored subscriptions (POST/DELETE /subscriptions), each with its
// latest tick from the shared tick socket. Rows are drawn when the list changes; a tick only rewrites
// its row's numbers (so a half-confirmed Remove survives it), and the price flashes the way it moved.

import { describe, get, request } from './api.js';
import { $, confirmButton, fill, framed, h, num, signed } from './dom.js';
import { clearErrors, showErrors } from './forms.js';

export class Watch {
  constructor(ctx) {
    this.ctx = ctx;
    this.table = $('#watch tbody');
    this.form = $('#watch-add');
    this.items = [];
    this.rows = new Map(); // token -> tr
    this.previous = new Map(); // token -> last price drawn
    this.redraw = framed(() => this.prices());
    ctx.instruments.attach(this.form.elements.instrument, $('#watch-options'), { qualified: true });
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.subscribe();
    });
  }

  async load() {
    const account_id = this.ctx.account;
    try {
      const answer = await get('/subscriptions', { account_id });
      if (account_id !== this.ctx.account) return;
      this.setItems(answer.subscriptions || []);
      this.error = null;
    } catch (error) {
      this.error = describe(error);
      this.setItems([]);
    }
  }

  setItems(items) {
    const same = items.length === this.items.length && items.every((s, i) => s.instrument_token === this.items[i].instrument_token);
    this.items = items;
    this.ctx.ticks?.want('watch', items.map((s) => s.instrument_token));
    if (!same || !this.table.children.length) this.render();
    else this.prices();
  }

  async subscribe() {
    const input = this.form.elements.instrument;
    const text = input.value.trim().toUpperCase();
    clearErrors(this.form);
    const body = { account_id: this.ctx.account, mode: 'quote' };
    if (/^\d+$/.test(text)) body.instrument_token = Number(text);
    else body.instruments = [text];
    try {
      const answer = (await request('POST', '/subscriptions', { body })).data;
      input.value = '';
      this.setItems(answer.subscriptions || this.items);
    } catch (error) {
      if (error.field === 'instrument_token') error.errors = [{ field: 'instruments', message: error.errors[0]?.message || error.message }];
      showErrors(this.form, error);
    }
  }

  async unsubscribe(item) {
    try {
      const answer = (await request('DELETE', `/subscriptions/${item.instrument_token}`, { query: { account_id: this.ctx.account } })).data;
      this.setItems(answer.subscriptions || this.items.filter((s) => s !== item));
    } catch (error) {
      this.ctx.notify(`Unsubscribe refused: ${describe(error)}`);
    }
  }

  render() {
    this.rows.clear();
    const rows = this.items.map((item) => {
      const name = item.tradingsymbol ? `${item.exchange}:${item.tradingsymbol}` : String(item.instrument_token);
      const cell = (cls) => h('td', { class: `num ${cls}` }, '—');
      const tr = h('tr', { dataset: { token: item.instrument_token, symbol: name } },
        h('th', { scope: 'row' }, name),
        cell('ltp'), cell('change'), cell('open wide-only'), cell('high wide-only'), cell('low wide-only'), cell('volume wide-only'),
        h('td', { class: 'actions' }, h('span', {},
          item.tradingsymbol ? h('button', { type: 'button', class: 'secondary', onclick: () => this.ctx.trade(item.exchange, item.tradingsymbol) }, 'Trade') : null,
          confirmButton('Remove', 'Confirm remove', () => this.unsubscribe(item), { 'aria-label': `Unsubscribe ${name}` }))));
      tr.querySelector('.ltp').dataset.ticks = 'no';
      this.rows.set(item.instrument_token, tr);
      return tr;
    });
    fill(this.table, rows.length ? rows : h('tr', {}, h('td', { colspan: 8, class: 'muted' }, this.error || 'No instruments: subscribe to one above.')));
    this.prices();
  }

  /** Rewrite the numbers of every row from the latest ticks. */
  prices() {
    for (const [token, tr] of this.rows) {
      const tick = this.ctx.ticks?.latest.get(token);
      if (!tick) continue;
      const price = tick.last_price;
      const before = this.previous.get(token);
      this.previous.set(token, price);
      const ltp = tr.querySelector('.ltp');
      ltp.dataset.ticks = 'yes';
      ltp.textContent = num(price);
      if (before !== undefined && price !== before) {
        ltp.classList.remove('flash-up', 'flash-down');
        void ltp.offsetWidth; // restart the animation
        ltp.classList.add(price > before ? 'flash-up' : 'flash-down');
      }
      const close = tick.ohlc?.close;
      fill(tr.querySelector('.change'), close ? [signed(((price - close) / close) * 100), '%'] : '—');
      tr.querySelector('.open').textContent = num(tick.ohlc?.open);
      tr.querySelector('.high').textContent = num(tick.ohlc?.high);
      tr.querySelector('.low').textContent = num(tick.ohlc?.low);
      tr.querySelector('.volume').textContent = tick.volume !== undefined ? num(tick.volume, 0) : '—';
    }
  }
}
