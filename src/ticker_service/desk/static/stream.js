// The account's order stream (/advanced/ws/orders/{account}), followed without losing an event:
// every message carries the account's `seq` (1, 2, 3, ... without gaps), the last one applied is
// kept, and every reconnect asks for what came after it with ?since=. A seq that skips ahead (which
// the service never sends) is treated as a broken connection and repaired the same way.

import { socketUrl } from './api.js';

const PING_MS = 25000;
const MAX_BACKOFF_MS = 4000;
// close codes after which reconnecting cannot help (README, "Close codes")
const FINAL = { 4401: 'no or an unknown API key', 4403: 'this key may not use the account', 4404: 'unknown account' };

export class OrderStream {
  /**
   * @param account the account id
   * @param handlers onEvent(message), onState({state, lastSeq, missed, ...}), onReset() when the
   *   events after the last seq are gone (cleaned up) and the book must be read again
   */
  constructor(account, handlers) {
    this.account = account;
    this.handlers = handlers;
    this.lastSeq = null; // the last seq applied; null until the first connection says where it starts
    this.events = 0;
    this.repairs = 0; // gaps seen and repaired by reconnecting with since
    this.duplicates = 0;
    this.attempt = 0;
    this.caughtUp = 0; // events received since the last reconnect
    this.state = 'connecting';
    this.detail = '';
    this.socket = null;
    this.stopped = false;
  }

  /** Connect, replaying every event after `since` first (null: from now on). */
  start(since = null) {
    this.lastSeq = since;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.ping);
    if (this.socket) this.socket.close(1000, 'desk closed');
  }

  report(state, detail = '') {
    this.state = state;
    this.detail = detail;
    this.handlers.onState?.(this);
  }

  connect() {
    if (this.stopped) return;
    const query = this.lastSeq === null ? {} : { since: this.lastSeq };
    const resumedFrom = this.lastSeq;
    const reconnecting = this.attempt > 0 || this.state === 'behind';
    const socket = new WebSocket(socketUrl(`/advanced/ws/orders/${encodeURIComponent(this.account)}`, query));
    this.socket = socket;
    this.report(reconnecting ? 'behind' : 'connecting', this.detail);
    socket.onmessage = (e) => {
      let message;
      try {
        message = JSON.parse(e.data);
      } catch {
        return;
      }
      if (message.type === 'connected') {
        this.attempt = 0;
        if (this.lastSeq === null) this.lastSeq = message.since;
        this.caughtUp = 0;
        this.resumedFrom = reconnecting ? resumedFrom : null;
        this.report('live');
      } else if (message.type === 'order_update') {
        this.receive(message, socket);
      }
    };
    socket.onopen = () => {
      this.ping = setInterval(() => socket.readyState === WebSocket.OPEN && socket.send('ping'), PING_MS);
    };
    socket.onclose = (e) => {
      clearInterval(this.ping);
      if (this.socket !== socket || this.stopped) return;
      if (FINAL[e.code]) {
        this.report('refused', `${FINAL[e.code]} (${e.code})`);
        return;
      }
      if (e.code === 4410 || e.code === 4400) {
        // the events after our seq were cleaned up (or the seq is not the account's): start over
        this.lastSeq = null;
        this.handlers.onReset?.();
      }
      this.attempt += 1;
      const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(this.attempt - 1, 5));
      this.report('behind', e.reason || `connection closed (${e.code})`);
      this.retry = setTimeout(() => this.connect(), delay);
    };
  }

  receive(message, socket) {
    const seq = message.seq;
    if (this.lastSeq !== null && seq <= this.lastSeq) {
      this.duplicates += 1; // never expected; harmless, since applying is by seq
      return;
    }
    if (this.lastSeq !== null && seq !== this.lastSeq + 1) {
      // a hole: drop this connection and ask again from the last seq we have
      this.repairs += 1;
      socket.close(4000, 'gap');
      this.socket = null;
      this.attempt += 1;
      this.report('behind', `missing events after seq ${this.lastSeq}`);
      this.retry = setTimeout(() => this.connect(), 0);
      return;
    }
    this.lastSeq = seq;
    this.events += 1;
    this.caughtUp += 1;
    this.handlers.onEvent(message);
    this.handlers.onState?.(this);
  }
}
