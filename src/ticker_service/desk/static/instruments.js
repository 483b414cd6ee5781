// Instrument search over GET /instruments (?q= matches a part of the symbol or name), feeding a
// <datalist> so the browser's own suggestion list (keyboard included) does the picking.

import { get } from './api.js';
import { debounce, fill, h, num } from './dom.js';

export class Instruments {
  constructor(ctx) {
    this.ctx = ctx;
    this.known = new Map(); // "EXCHANGE:SYMBOL" -> instrument
    this.byToken = new Map();
  }

  remember(list) {
    for (const i of list) {
      this.known.set(`${i.exchange}:${i.tradingsymbol}`, i);
      this.byToken.set(i.instrument_token, i);
    }
    return list;
  }

  async search(q, limit = 20) {
    if (!q || q.length < 2) return [];
    return this.remember(await get('/instruments', { q, limit, account_id: this.ctx.account }));
  }

  async byTokens(tokens) {
    const missing = tokens.filter((t) => !this.byToken.has(t));
    await Promise.all(missing.map(async (t) => {
      try {
        this.remember(await get('/instruments', { instrument_token: t, account_id: this.ctx.account }));
      } catch {
        /* shown by its token */
      }
    }));
    return tokens.map((t) => this.byToken.get(t));
  }

  /** The instrument a symbol names, given the exchange when several have it. */
  find(symbol, exchange) {
    const wanted = String(symbol || '').trim().toUpperCase();
    if (wanted.includes(':')) return this.known.get(wanted);
    if (exchange && this.known.has(`${exchange}:${wanted}`)) return this.known.get(`${exchange}:${wanted}`);
    const matches = [...this.known.values()].filter((i) => i.tradingsymbol === wanted);
    return matches.length === 1 ? matches[0] : undefined;
  }

  /** Wire an input to a datalist: suggestions as the user types (`qualified`: "NSE:INFY"). */
  attach(input, datalist, { qualified = false } = {}) {
    const suggest = debounce(async () => {
      try {
        const found = await this.search(input.value.replace(/^[A-Z]+:/i, '').trim());
        fill(datalist, found.map((i) => h('option', { value: qualified ? `${i.exchange}:${i.tradingsymbol}` : i.tradingsymbol },
          `${i.exchange} · ${i.name || ''} · lot ${i.lot_size}${i.last_price ? ' · ' + num(i.last_price) : ''}`)));
      } catch {
        /* suggestions are a help, not a must */
      }
    }, 200);
    input.addEventListener('input', suggest);
  }
}
