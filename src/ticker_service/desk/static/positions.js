// Positions and holdings, valued at live prices from the tick socket. Gross P&L is Kite's formula,
// (sell value - buy value) + quantity x last price x multiplier; net P&L is gross less the charges
// the service reports (the position's `charges`, or pnl - pnl_net), or "not available" where it reports none.

import { NOT_AVAILABLE, describe, optional } from './api.js';
import { $, fill, framed, h, num, signed } from './dom.js';

function gross(p, ltp) {
  if (ltp === undefined || ltp === null) return p.pnl;
  return (p.sell_value - p.buy_value) + p.quantity * ltp * (p.multiplier || 1);
}

export class Positions {
  constructor(ctx) {
    this.ctx = ctx;
    this.table = $('#positions tbody');
    this.foot = $('#positions tfoot');
    this.holdingsBox = $('#holdings');
    this.margins = $('#margins');
    this.positions = [];
    this.holdings = NOT_AVAILABLE;
    this.redraw = framed(() => this.render());
  }

  async load() {
    const account_id = this.ctx.account;
    const [positions, holdings, margins] = await Promise.allSettled([
      optional('/portfolio/positions', { account_id }),
      optional('/portfolio/holdings', { account_id }),
      optional('/user/margins', { account_id }),
    ]);
    if (account_id !== this.ctx.account) return;
    this.error = positions.status === 'rejected' ? describe(positions.reason) : null;
    this.positions = positions.status === 'fulfilled' && positions.value !== NOT_AVAILABLE ? positions.value.net || [] : [];
    this.holdings = holdings.status === 'fulfilled' ? holdings.value : NOT_AVAILABLE;
    this.marginData = margins.status === 'fulfilled' ? margins.value : NOT_AVAILABLE;
    const tokens = [...this.positions, ...(Array.isArray(this.holdings) ? this.holdings : [])].map((p) => p.instrument_token);
    this.ctx.ticks?.want('positions', tokens.filter(Boolean));
    this.render();
  }

  ltp(item) {
    return this.ctx.ticks?.latest.get(item.instrument_token)?.last_price ?? item.last_price;
  }

  render() {
    let totalGross = 0;
    let totalNet = 0;
    let netKnown = true;
    const rows = this.positions.map((p) => {
      const ltp = this.ltp(p);
      const g = gross(p, ltp);
      const charges = typeof p.charges === 'number' ? p.charges : typeof p.pnl_net === 'number' ? p.pnl - p.pnl_net : null;
      const net = charges === null ? null : g - charges;
      totalGross += g || 0;
      if (net === null) netKnown = false;
      else totalNet += net;
      return h('tr', { dataset: { token: p.instrument_token } },
        h('td', {}, p.tradingsymbol, h('small', { class: 'muted' }, ` ${p.exchange}`)),
        h('td', { class: 'wide-only' }, p.product),
        h('td', { class: 'num' }, p.quantity),
        h('td', { class: 'num wide-only' }, num(p.average_price)),
        h('td', { class: 'num ltp' }, num(ltp)),
        h('td', { class: 'num pnl' }, signed(g)),
        h('td', { class: 'num pnl-net', title: charges === null ? null : `charges ${num(charges)}` }, net === null ? h('span', { class: 'muted', title: 'charges not reported by this service' }, 'not available') : signed(net)));
    });
    fill(this.table, rows.length ? rows : h('tr', {}, h('td', { colspan: 7, class: 'muted' }, this.error ? `Positions: ${this.error}` : 'No positions.')));
    fill(this.foot, rows.length ? h('tr', {}, h('th', { scope: 'row', colspan: 3 }, 'Total'), h('td', { class: 'wide-only', colspan: 2 }),
      h('td', { class: 'num' }, signed(totalGross)), h('td', { class: 'num' }, netKnown ? signed(totalNet) : '—')) : null);
    this.renderHoldings();
    this.renderMargins();
  }

  renderHoldings() {
    if (this.holdings === NOT_AVAILABLE) {
      fill(this.holdingsBox, h('p', { class: 'muted not-available' }, 'Holdings: not available on this service.'));
      return;
    }
    const list = Array.isArray(this.holdings) ? this.holdings : this.holdings?.data || [];
    if (!list.length) {
      fill(this.holdingsBox, h('p', { class: 'muted' }, 'No holdings.'));
      return;
    }
    fill(this.holdingsBox, h('div', { class: 'table-wrap' }, h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, ['Symbol', 'Qty', 'Avg', 'LTP', 'P&L'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, list.map((item) => {
        const ltp = this.ltp(item);
        const qty = (item.quantity || 0) + (item.t1_quantity || 0);
        return h('tr', {}, h('td', {}, item.tradingsymbol), h('td', { class: 'num' }, qty),
          h('td', { class: 'num' }, num(item.average_price)), h('td', { class: 'num' }, num(ltp)),
          h('td', { class: 'num' }, signed(ltp !== undefined ? (ltp - item.average_price) * qty : item.pnl)));
      })))));
  }

  renderMargins() {
    const m = this.marginData;
    if (!m || m === NOT_AVAILABLE) {
      fill(this.margins, h('p', { class: 'muted not-available' }, 'Margins: not available on this service.'));
      return;
    }
    const segments = Object.entries(m).filter(([, s]) => s && typeof s === 'object' && s.enabled !== false);
    fill(this.margins, segments.map(([name, s]) => h('div', { class: 'card margin', dataset: { segment: name } },
      h('h3', {}, `Funds · ${name}`),
      h('p', {}, 'Available ', h('strong', {}, num(s.net))),
      h('p', { class: 'muted' }, `Cash ${num(s.available?.cash)} · used ${num(s.utilised?.debits)}`))));
  }
}
