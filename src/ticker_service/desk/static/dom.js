// Building the page without parsing HTML from strings: every value goes in as a text node or an attribute set with
// setAttribute, so order tags, symbols and messages typed by users can never become markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  add(el, children);
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

const numbers = new Map();
/** A number as the desk shows it (Indian grouping), or a dash for nothing. */
export function num(value, digits = 2) {
  if (value === null || value === undefined || value === '' || Number.isNaN(Number(value))) return '—';
  let format = numbers.get(digits);
  if (!format) {
    format = new Intl.NumberFormat('en-IN', { minimumFractionDigits: digits, maximumFractionDigits: digits });
    numbers.set(digits, format);
  }
  return format.format(Number(value));
}

/** A signed amount with a class saying which way it went. */
export function signed(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return h('span', { class: 'muted' }, '—');
  const n = Number(value);
  return h('span', { class: n > 0 ? 'up' : n < 0 ? 'down' : '' }, (n > 0 ? '+' : '') + num(n, digits));
}

/** The local time of day of an RFC 3339 timestamp (the full one on hover). */
export function clock(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return h('time', { datetime: d.toISOString(), title: d.toString() }, d.toLocaleTimeString([], { hour12: false }));
}

export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Run `fn` at most once per animation frame, however often it is asked for. */
export function framed(fn) {
  let asked = false;
  return () => {
    if (asked) return;
    asked = true;
    requestAnimationFrame(() => {
      asked = false;
      fn();
    });
  };
}

/**
 * A button that asks for a second click before acting (cancel, delete): no modal confirm, works
 * from the keyboard, and a stray click does nothing.
 */
export function confirmButton(label, confirmLabel, action, attrs = {}) {
  let armed = 0;
  const button = h('button', { type: 'button', class: 'secondary', ...attrs }, label);
  const named = button.getAttribute('aria-label');
  const disarm = () => {
    clearTimeout(armed);
    armed = 0;
    button.textContent = label;
    button.classList.remove('danger');
    if (named) button.setAttribute('aria-label', named);
  };
  button.addEventListener('click', async () => {
    if (!armed) {
      button.textContent = confirmLabel;
      button.classList.add('danger');
      if (named) button.setAttribute('aria-label', `${confirmLabel}: ${named}`);
      armed = setTimeout(disarm, 4000);
      return;
    }
    disarm();
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}
