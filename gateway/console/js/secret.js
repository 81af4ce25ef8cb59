// A secret shown once (a new API key or MCP token): a read-only field, a copy button and
// a warning. Dismissing it removes the secret from the page.

import { h, uid } from './dom.js';
import { announce } from './messages.js';

/** Copies `text`; if the clipboard is refused, selects `input` so Ctrl+C copies it. */
async function copy(text, input, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
    announce('Copied to the clipboard.');
  } catch {
    input.focus();
    input.select();
    announce('The browser did not allow copying: the secret is selected, press Ctrl+C (⌘C) to copy it.', 'info');
  }
}

/**
 * The panel, put into `slot` with focus on it. `what` names the secret ("API key"),
 * `name` is the key's or token's name, `note` an extra sentence; `onDismiss` puts focus
 * somewhere sensible once the panel is gone.
 */
export function showSecret(slot, { what, name, secret, note, onDismiss }) {
  const titleId = uid('secret-title');
  const inputId = uid('secret-value');
  const input = h('input', {
    id: inputId,
    type: 'text',
    class: 'mono',
    readonly: true,
    value: secret,
    spellcheck: 'false',
    autocomplete: 'off',
    'data-testid': 'secret-value',
  });
  const copyButton = h('button', { type: 'button' }, 'Copy');
  copyButton.addEventListener('click', () => copy(secret, input, copyButton));
  const done = h('button', { type: 'button', class: 'secondary' }, 'I have stored it');
  const panel = h(
    'section',
    { class: 'card secret', 'aria-labelledby': titleId, tabindex: '-1' },
    h('h2', { id: titleId }, `Your new ${what}: ${name}`),
    h(
      'p',
      {},
      h('strong', {}, 'Copy it now. '),
      `This is the only time the ${what} is shown: only its SHA-256 hash is stored, so nobody can show it again. `,
      note ?? '',
    ),
    h('label', { for: inputId }, `${what[0].toUpperCase()}${what.slice(1)} (secret)`),
    h('div', { class: 'secret-row' }, input, copyButton),
    h('div', { class: 'actions' }, done),
  );
  done.addEventListener('click', () => {
    panel.remove();
    onDismiss?.();
  });
  slot.replaceChildren(panel);
  panel.focus();
  return panel;
}
