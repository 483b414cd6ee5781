"""The order lifecycle: a task from intake to its final state, and the events it produces.

| module | holds |
|---|---|
| `states` | task states, the claimable set, the allowed transitions (rendered into the SQL) |
| `queries` | every statement that writes `order_tasks` |
| `tasks` | intake (one statement), reads, the operator's requeue |
| `events` | the payloads of task and order events |
| `claim` | taking a task (one statement) and keeping its lease |
| `broker_call` | one broker call and what its exception means |
| `outcome` | the pure outcome table: broker result + task -> next state and events |
| `reconcile` | whether an `unknown` task's request took effect |
| `finish` | recording a decision: fenced, one transaction, events with the COMMIT |
| `hooks` | what the runtime may plug into the finish (batches) |
| `executor` | the workers' loop |

Where each event is born. Every event is appended to `outbox_events` with the account's next seq,
in the transaction of the change it describes. From there it goes two ways and no other: every
instance's WebSocket stream tails the outbox by seq (`stream/`), and the webhook fan-out makes one
delivery per subscribed endpoint (`webhooks/`).

| event | created in | when |
|---|---|---|
| `task_status` pending | `queries.INTAKE` | an order, modify or cancel is accepted |
| `task_status` pending | `batches.service`, `batches.progress` | a batch leg or rollback task becomes claimable |
| `task_status` pending | `tasks.retry_dead_letter` | an operator requeues a dead letter |
| `task_status` running | `queries.CLAIM` (in SQL: `events.task_status_sql`) | an attempt starts |
| `task_status` (others) | `finish` | the outcome table decided the next state |
| `task_status` unknown | `jobs.maintenance.sweep_expired_leases` | a lease ran out during a call |
| `task_status` skipped | `batches.progress` | an earlier leg of the batch failed |
| `order_placed`, `order_updated` | `orders.mirror.apply_snapshot` | the broker has an order / it changed |
| `order_completed` | `orders.mirror.apply_snapshot` | the order filled |
| `order_cancelled`, `order_rejected` | `orders.mirror.apply_snapshot` | the order was cancelled / rejected |
| `order_rejected` (no order id) | `finish` | the broker refused a placement outright |
| `order_failed` | `finish` | never sent: past its deadline, or given up |
| `batch_completed`, `batch_failed`, `batch_rollback_failed` | `batches.progress` (a finish hook) | a batch ended |

`apply_snapshot` is called by `finish` (the broker's answer), by each broker's order-update stream
(the paper matcher; Kite's ticker and postbacks) and by order-book reconciliation
(`jobs.maintenance`); it deduplicates on the order's state and never moves an order backwards, so
one change makes one event whichever of them sees it first.
"""
