// Showing the service's validation messages next to the field they name. Inputs carry the API's
// field name in data-field ("quantity", "orders[1].price"); a message for a field with no input
// goes to the form's own error line.

import { ApiError, describe } from './api.js';
import { $, $$, h } from './dom.js';

export function clearErrors(form) {
  for (const el of $$('[aria-invalid="true"]', form)) el.removeAttribute('aria-invalid');
  for (const el of $$('.field-error[data-generated]', form)) el.remove();
  for (const el of $$('.field-error, .form-error', form)) {
    el.hidden = true;
    el.textContent = '';
  }
}

/** Put each message of `error` next to its field; true when at least one found its field. */
export function showErrors(form, error) {
  clearErrors(form);
  clearOnEdit(form);
  const messages = error instanceof ApiError && error.errors.length
    ? error.errors
    : [{ field: error instanceof ApiError ? error.field || '' : '', message: describe(error) }];
  let placed = false;
  let first = null;
  for (const { field, message } of messages) {
    const input = field ? $$('[data-field]', form).find((el) => el.dataset.field === field) : null;
    if (!input) {
      formError(form, field ? `${field}: ${message}` : message);
      continue;
    }
    placed = true;
    input.setAttribute('aria-invalid', 'true');
    let slot = $$('.field-error', form).find((el) => el.dataset.errorFor === field);
    if (!slot) {
      const id = `err-${Math.random().toString(36).slice(2)}`;
      slot = h('p', { class: 'field-error', id, dataset: { errorFor: field, generated: '' } });
      (input.closest('label') || input).after(slot);
    }
    slot.textContent = message;
    slot.hidden = false;
    if (!slot.id) slot.id = `err-${Math.random().toString(36).slice(2)}`;
    input.setAttribute('aria-describedby', slot.id);
    first ??= input;
  }
  first?.focus();
  return placed;
}

/** Editing a field marked invalid takes its message away (the next submit says whether it is right). */
function clearOnEdit(form) {
  if (form.dataset.clearsOnEdit) return;
  form.dataset.clearsOnEdit = 'yes';
  form.addEventListener('input', (e) => {
    const input = e.target;
    if (!(input instanceof Element) || input.getAttribute('aria-invalid') !== 'true') return;
    input.removeAttribute('aria-invalid');
    input.removeAttribute('aria-describedby');
    for (const slot of $$('.field-error', form)) {
      if (slot.dataset.errorFor === input.dataset.field) {
        slot.hidden = true;
        slot.textContent = '';
      }
    }
  });
}

export function formError(form, message) {
  const slot = $('.form-error', form);
  if (!slot) return;
  slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
  slot.hidden = false;
}

/** A number field's value, or undefined when empty (so the API's default applies). */
export function numberOf(input) {
  const raw = input?.value.trim();
  if (!raw) return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : raw; // a non-number goes as typed: the service names the field
}

export function textOf(input) {
  const raw = input?.value.trim();
  return raw ? raw : undefined;
}
