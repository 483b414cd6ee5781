// One tick socket per account (/ws/ticks), shared by the positions and the market watch. Each of
// them says which instruments it wants; the socket asks the service for their union with KiteTicker's
// control messages, and keeps the latest tick of each (ticks are latest-value data: none is replayed).

import { socketUrl } from './api.js';

export class TickSocket {
  constructor(account, onTicks) {
    this.account = account;
    this.onTicks = onTicks;
    this.wants = new Map(); // owner -> Set of tokens
    this.latest = new Map(); // token -> tick
    this.asked = new Set(); // tokens this socket has subscribed
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  want(owner, tokens) {
    this.wants.set(owner, new Set(tokens));
    this.sync();
  }

  union() {
    const all = new Set();
    for (const tokens of this.wants.values()) for (const t of tokens) all.add(t);
    return all;
  }

  sync() {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    const all = this.union();
    const add = [...all].filter((t) => !this.asked.has(t));
    const drop = [...this.asked].filter((t) => !all.has(t));
    if (add.length) {
      this.socket.send(JSON.stringify({ a: 'subscribe', v: add }));
      this.socket.send(JSON.stringify({ a: 'mode', v: ['quote', add] }));
    }
    if (drop.length) this.socket.send(JSON.stringify({ a: 'unsubscribe', v: drop }));
    for (const t of add) this.asked.add(t);
    for (const t of drop) {
      this.asked.delete(t);
      this.latest.delete(t);
    }
  }

  connect() {
    if (this.stopped) return;
    const socket = new WebSocket(socketUrl('/ws/ticks', { account_id: this.account }));
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.asked = new Set();
      this.sync();
    };
    socket.onmessage = (e) => {
      let message;
      try {
        message = JSON.parse(e.data);
      } catch {
        return;
      }
      if (message.type === 'ticks' && Array.isArray(message.data)) {
        for (const tick of message.data) this.latest.set(tick.instrument_token, tick);
        this.onTicks(message.data);
      }
    };
    socket.onclose = (e) => {
      if (this.socket !== socket || this.stopped || (e.code >= 4400 && e.code < 4500)) return;
      this.attempt += 1;
      setTimeout(() => this.connect(), Math.min(5000, 300 * 2 ** Math.min(this.attempt, 4)));
    };
  }

  stop() {
    this.stopped = true;
    this.socket?.close(1000, 'desk closed');
  }
}
