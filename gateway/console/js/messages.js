// What the console tells the user: one polite live region at the top of the page for
// outcomes, and an alert inside a form for what went wrong with it.

import { ApiError } from './api.js';
import { h, replace } from './dom.js';

/** A problem with what the user entered, found before any request: its message is shown. */
export class InputError extends Error {}

const region = () => document.getElementById('status');

/** Says `text` in the live region; `kind` is `ok`, `error` or `info`. */
export function announce(text, kind = 'ok') {
  const element = region();
  element.className = `flash ${kind}`;
  // Emptied first so that the same message said twice is announced twice.
  element.replaceChildren();
  requestAnimationFrame(() => replace(element, text));
}

export function clearAnnouncement() {
  region().replaceChildren();
}

/** What an error says to people: the API's `message`, with its request id for support. */
export function describe(error) {
  if (error instanceof ApiError) {
    return [
      error.message,
      error.requestId ? h('span', { class: 'request-id' }, `Request id: ${error.requestId}`) : null,
    ];
  }
  if (error instanceof InputError) return [error.message];
  console.warn(error);
  return ['Something went wrong in the console. Reload the page and try again.'];
}

/** The alert paragraph a form reports its errors in. */
export function formError() {
  return h('p', { class: 'form-error', role: 'alert' });
}

/**
 * Runs `action` for a form: its submit button is disabled meanwhile, and an error goes
 * to `errorElement` (announced, as it is an alert) instead of escaping.
 */
export async function submitting(form, errorElement, action) {
  const buttons = form.querySelectorAll('button');
  errorElement.replaceChildren();
  form.setAttribute('aria-busy', 'true');
  buttons.forEach((button) => { button.disabled = true; });
  try {
    return await action();
  } catch (error) {
    replace(errorElement, describe(error));
    return undefined;
  } finally {
    form.removeAttribute('aria-busy');
    buttons.forEach((button) => { button.disabled = false; });
  }
}

/** Runs a one-button action (revoke, accept…): errors go to the live region. */
export async function acting(button, action) {
  button.disabled = true;
  try {
    return await action();
  } catch (error) {
    announce(describe(error), 'error');
    return undefined;
  } finally {
    if (button.isConnected) button.disabled = false;
  }
}
