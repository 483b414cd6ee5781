// The desk's start: the API key, the account, the screens (#blotter, #ticket, ...), and one context
// per account holding its book, its order stream and its tick socket.

import { ApiError, apiKey, describe, get } from './api.js';
import { Blotter } from './blotter.js';
import { Book } from './book.js';
import { $, $$, fill, framed, h } from './dom.js';
import { Health } from './health.js';
import { Instruments } from './instruments.js';
import { Positions } from './positions.js';
import { OrderStream } from './stream.js';
import { Ticket } from './ticket.js';
import { TickSocket } from './ticks.js';
import { Watch } from './watch.js';
import { Webhooks } from './webhooks.js';

const ACCOUNT = 'ticker-desk.account';
const SCREENS = ['blotter', 'ticket', 'positions', 'watch', 'webhooks', 'health'];
const POLL_MS = { positions: 5000, webhooks: 2000, health: 2000 };

const ctx = {
  account: null,
  book: null,
  stream: null,
  ticks: null,
  screen: 'blotter',
  notify,
  trade: (exchange, symbol) => {
    ctx.ticket.prefill(exchange, symbol);
    location.hash = '#ticket';
  },
};
ctx.instruments = new Instruments(ctx);
ctx.blotter = new Blotter(ctx);
ctx.ticket = new Ticket(ctx);
ctx.positions = new Positions(ctx);
ctx.watch = new Watch(ctx);
ctx.webhooks = new Webhooks(ctx);
ctx.health = new Health(ctx, $('#health'));

const banner = $('#banner');
let bannerTimer = 0;

/** A passing message in the banner. */
function notify(message, ms = 6000) {
  clearTimeout(bannerTimer);
  banner.textContent = message;
  banner.hidden = false;
  banner.dataset.kind = 'note';
  bannerTimer = setTimeout(() => (banner.hidden = true), ms);
}

const streamState = $('#stream-state');
const drawStream = framed(() => {
  const s = ctx.stream;
  if (!s) return;
  streamState.dataset.state = s.state;
  streamState.dataset.lastSeq = s.lastSeq ?? '';
  streamState.dataset.events = s.events;
  streamState.dataset.repairs = s.repairs;
  const where = s.lastSeq === null ? '' : ` · seq ${s.lastSeq}`;
  streamState.textContent = { live: 'live', connecting: 'connecting…', behind: 'reconnecting…', refused: 'refused' }[s.state] + where;
  if (s.state === 'behind') {
    clearTimeout(bannerTimer);
    banner.hidden = false;
    banner.dataset.kind = 'behind';
    banner.textContent = `Behind: the order stream is down (${s.detail || 'reconnecting'}). The blotter shows events up to seq ${s.lastSeq ?? '—'}; it catches up from there when the service answers again.`;
  } else if (s.state === 'refused') {
    clearTimeout(bannerTimer);
    banner.hidden = false;
    banner.dataset.kind = 'behind';
    banner.textContent = `The order stream refused this desk: ${s.detail}.`;
  } else if (s.state === 'live' && banner.dataset.kind === 'behind') {
    const from = s.resumedFrom;
    notify(from === null || from === undefined
      ? 'Reconnected.'
      : `Caught up: ${s.caughtUp} event(s) after seq ${from} replayed with since=${from}; none missed.`);
    banner.dataset.kind = 'caught-up';
  } else if (s.state === 'live' && banner.dataset.kind === 'caught-up') {
    banner.textContent = `Caught up: ${s.caughtUp} event(s) after seq ${s.resumedFrom} replayed with since=${s.resumedFrom}; none missed.`;
  }
});

/** Follow one account: its book, then every event of its stream from the first one kept. */
async function openAccount(account) {
  closeAccount();
  ctx.account = account;
  sessionStorage.setItem(ACCOUNT, account);
  const book = new Book();
  ctx.book = book;
  ctx.blotter.reset();
  const redraw = framed(() => ctx.blotter.render());
  book.onChange = redraw;
  book.onUnknownTask = queueTaskLookup;
  const refreshPositions = debouncedPositions();
  ctx.ticks = new TickSocket(account, () => {
    if (ctx.screen === 'positions') ctx.positions.redraw();
    if (ctx.screen === 'watch') ctx.watch.redraw();
  });
  try {
    book.load(await get('/orders', { account_id: account }));
  } catch (error) {
    notify(`Order book: ${describe(error)}`);
  }
  if (ctx.book !== book) return;
  // since=0: the account's kept events (TASK_RETENTION_DAYS), so every order shows its events
  ctx.stream = new OrderStream(account, {
    onEvent: (message) => {
      book.apply(message);
      if (message.data?.event?.startsWith('order_')) refreshPositions();
    },
    onState: drawStream,
    onReset: () => get('/orders', { account_id: account }).then((orders) => book.load(orders), () => {}),
  });
  ctx.stream.start(0);
  showScreen(ctx.screen);
}

function closeAccount() {
  ctx.stream?.stop();
  ctx.ticks?.stop();
  ctx.stream = null;
  ctx.ticks = null;
  ctx.book = null;
}

function debouncedPositions() {
  let timer = 0;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(() => ctx.screen === 'positions' && ctx.positions.load().catch(() => {}), 400);
  };
}

// Tasks seen only through their task_status events: their order's fields, four at a time
const taskQueue = [];
let lookups = 0;
function queueTaskLookup(taskId) {
  taskQueue.push([ctx.book, taskId]);
  pumpTasks();
}
function pumpTasks() {
  while (lookups < 4 && taskQueue.length) {
    const [book, taskId] = taskQueue.shift();
    if (book !== ctx.book) continue;
    lookups += 1;
    get(`/tasks/${encodeURIComponent(taskId)}`)
      .then((task) => book.loadTask(task), () => {})
      .finally(() => {
        lookups -= 1;
        pumpTasks();
      });
  }
}

let poll = 0;
function showScreen(name) {
  const screen = SCREENS.includes(name) ? name : 'blotter';
  ctx.screen = screen;
  for (const view of $$('.view')) view.hidden = view.dataset.view !== screen;
  for (const tab of $$('.tabs a')) {
    if (tab.dataset.tab === screen) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  clearInterval(poll);
  if (!ctx.account && screen !== 'health') return;
  const load = {
    blotter: () => ctx.blotter.render(),
    ticket: () => ctx.ticket.loadBatches(),
    positions: () => ctx.positions.load(),
    watch: () => ctx.watch.load(),
    webhooks: () => ctx.webhooks.load(),
    health: () => ctx.health.load(),
  }[screen];
  const run = () => Promise.resolve(load()).catch((error) => notify(describe(error)));
  run();
  if (POLL_MS[screen]) poll = setInterval(run, POLL_MS[screen]);
}

// ---- the API key --------------------------------------------------------------------------------

const keyDialog = $('#key-dialog');
function askForKey(why) {
  if (why) $('#key-why').textContent = why;
  $('#key-input').value = '';
  if (!keyDialog.open) keyDialog.showModal();
  $('#key-input').focus();
}
$('#key-button').addEventListener('click', () => askForKey());
$('#key-close').addEventListener('click', () => keyDialog.close());
$('#key-forget').addEventListener('click', () => {
  apiKey.set('');
  keyDialog.close();
  start();
});
$('#key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  apiKey.set($('#key-input').value.trim());
  keyDialog.close();
  start();
});

// ---- the account and the start ------------------------------------------------------------------

const accountSelect = $('#account');
accountSelect.addEventListener('change', () => openAccount(accountSelect.value));

async function start() {
  let accounts;
  try {
    accounts = await get('/accounts');
  } catch (error) {
    closeAccount();
    fill(accountSelect);
    if (error instanceof ApiError && error.status === 401) {
      askForKey(apiKey.get()
        ? 'The service did not accept this key. Enter another one (kept in this tab only, sessionStorage).'
        : 'This service needs an API key. It is kept in this browser tab only (sessionStorage) and sent as X-API-Key.');
    } else {
      notify(`Accounts: ${describe(error)}`, 15000);
    }
    return;
  }
  $('#key-button').textContent = apiKey.get() ? 'API key ✓' : 'API key';
  fill(accountSelect, accounts.map((a) => h('option', { value: a.account_id }, `${a.account_id} (${a.broker})`)));
  const remembered = sessionStorage.getItem(ACCOUNT);
  const chosen = accounts.find((a) => a.account_id === remembered) || accounts[0];
  if (!chosen) {
    notify('This key may use no account.', 15000);
    return;
  }
  accountSelect.value = chosen.account_id;
  await openAccount(chosen.account_id);
}

window.addEventListener('hashchange', () => showScreen(location.hash.slice(1)));
ctx.screen = SCREENS.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'blotter';
showScreen(ctx.screen);
start();
