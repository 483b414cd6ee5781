// The blotter's model: the account's orders, from the broker's book (GET /orders) and then from
// every event of the order stream. A row is an order (keyed by its order id) or, before the broker
// has given one, the task that will place it (keyed by its task id); the two become one row when
// the order id arrives. Each row keeps the events that touched it, by seq.

const ORDER_FIELDS = [
  'order_id', 'task_id', 'exchange', 'tradingsymbol', 'transaction_type', 'quantity', 'filled_quantity',
  'pending_quantity', 'cancelled_quantity', 'price', 'trigger_price', 'average_price', 'order_type', 'product',
  'validity', 'variety', 'status', 'status_message', 'tag', 'broker_tag', 'order_timestamp', 'instrument_token',
];
export const OPEN_STATUSES = new Set([
  'OPEN', 'TRIGGER PENDING', 'AMO REQ RECEIVED', 'MODIFY PENDING', 'MODIFY VALIDATION PENDING', 'OPEN PENDING',
  'PUT ORDER REQ RECEIVED', 'VALIDATION PENDING',
]);
// a task that has not (yet) produced an order: its state, shown in capitals like an order's
const TASK_ONLY = { pending: 'PENDING', running: 'SENDING', retrying: 'RETRYING', unknown: 'UNKNOWN', waiting: 'WAITING',
  skipped: 'SKIPPED', failed: 'FAILED', dead_letter: 'FAILED', rejected: 'REJECTED', completed: 'PLACED' };

export class Book {
  constructor() {
    this.rows = new Map(); // key -> row
    this.byOrder = new Map(); // order_id -> row
    this.byTask = new Map(); // task_id of the placing task -> row
    this.counter = 0;
    this.onChange = () => {};
    this.onUnknownTask = () => {}; // a task row without its order's fields: the view fetches them
  }

  row(key) {
    let row = this.rows.get(key);
    if (!row) {
      row = { key, n: ++this.counter, v: 0, events: [], order_id: null, task_id: null, taskStatus: null };
      this.rows.set(key, row);
    }
    return row;
  }

  /** Copy the order fields that `data` has onto the row (and index it by its ids). */
  assign(row, data) {
    row.v += 1; // the view redraws a row only when this changed
    for (const name of ORDER_FIELDS) if (data[name] !== undefined && data[name] !== null) row[name] = data[name];
    if (row.order_id) this.byOrder.set(row.order_id, row);
  }

  /** The broker's book (GET /orders), oldest first. */
  load(orders) {
    for (const order of orders) {
      let row = this.byOrder.get(order.order_id) || (order.task_id && this.byTask.get(order.task_id));
      if (!row) row = this.row(order.order_id);
      if (order.task_id) this.byTask.set(order.task_id, row);
      this.assign(row, order);
    }
    this.onChange();
  }

  /** The task behind a row that only knows its task (GET /tasks/{id}): the order's fields it lacks.
   * Only what is missing: the task's copy of the order is older than the events already applied. */
  loadTask(task) {
    const row = this.byTask.get(task.task_id);
    if (!row) return;
    const known = { ...task.params, ...(task.order || {}), order_id: task.order_id, task_id: task.task_id };
    const missing = {};
    for (const [name, value] of Object.entries(known)) if (row[name] === undefined || row[name] === null) missing[name] = value;
    this.assign(row, missing);
    if (!row.status && !row.order_id) row.taskStatus = task.status;
    if (task.error && !row.message) row.message = task.error;
    row.v += 1;
    this.onChange();
  }

  /** One message of the order stream. */
  apply(message) {
    const data = message.data || {};
    const event = { seq: message.seq, at: message.timestamp, event: data.event, status: data.status,
      filled: data.filled_quantity, message: data.status_message || data.error || null, operation: data.operation };
    let row = null;
    if (data.event === 'task_status') {
      row = data.order_id ? this.byOrder.get(data.order_id) : null;
      const placing = !data.operation || data.operation === 'place_order';
      if (!row && placing) row = this.byTask.get(data.task_id) || this.taskRow(data.task_id);
      if (row && placing && !row.status) {
        row.taskStatus = data.status;
        if (data.error) row.message = data.error;
      }
      if (row && data.order_id && !row.order_id) this.assign(row, { order_id: data.order_id });
    } else if (data.event && data.event.startsWith('order_')) {
      row = (data.order_id && this.byOrder.get(data.order_id)) || (data.task_id && this.byTask.get(data.task_id));
      if (!row) row = this.row(data.order_id || data.task_id);
      if (data.task_id && !this.byTask.has(data.task_id) && !row.task_id) this.byTask.set(data.task_id, row);
      this.assign(row, data);
      if (data.event === 'order_failed' && !row.order_id) {
        row.taskStatus = 'failed';
        row.message = data.error || data.status_message || row.message;
      }
    }
    if (row) {
      row.events.push(event);
      row.v += 1;
    }
    this.onChange();
  }

  taskRow(taskId) {
    const row = this.row(taskId);
    row.task_id = taskId;
    this.byTask.set(taskId, row);
    this.onUnknownTask(taskId);
    return row;
  }

  /** What the row's status column says: the order's status, else its task's state. */
  static status(row) {
    if (row.status) return row.status;
    return TASK_ONLY[row.taskStatus] || (row.taskStatus || '').toUpperCase() || 'PENDING';
  }

  static isOpen(row) {
    return Boolean(row.order_id) && OPEN_STATUSES.has(row.status);
  }

  /** Rows matching the filters, newest first. */
  select({ status = '', symbol = '', tag = '' } = {}) {
    const sym = symbol.trim().toUpperCase();
    const wantTag = tag.trim().toLowerCase();
    const out = [];
    for (const row of this.rows.values()) {
      const shown = Book.status(row);
      if (status === 'open' && !OPEN_STATUSES.has(shown)) continue;
      if (status === 'complete' && shown !== 'COMPLETE') continue;
      if (status === 'cancelled' && shown !== 'CANCELLED') continue;
      if (status === 'rejected' && shown !== 'REJECTED') continue;
      if (status === 'failed' && shown !== 'FAILED') continue;
      if (status === 'pending' && row.status) continue;
      if (sym && !String(row.tradingsymbol || '').toUpperCase().includes(sym)) continue;
      if (wantTag && !String(row.tag || '').toLowerCase().includes(wantTag)) continue;
      out.push(row);
    }
    return out.sort((a, b) => b.n - a.n);
  }
}
