// Modal dialogs on the native <dialog>: showModal() keeps focus inside and Escape closes
// it; we put focus on the safe choice first and give it back where it was afterwards.

import { h, uid } from './dom.js';

/**
 * Asks a question. `body` is text or nodes (fields the caller reads after). Answers true
 * when the user confirmed.
 */
export function confirmDialog({ title, body, confirmLabel, danger = false }) {
  const titleId = uid('dialog-title');
  const bodyId = uid('dialog-body');
  const returnFocusTo = document.activeElement;
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'button', class: 'secondary', autofocus: true }, 'Cancel');
    const confirm = h('button', { type: 'submit', class: danger ? 'danger' : null }, confirmLabel);
    const form = h(
      'form',
      { method: 'dialog' },
      h('h2', { id: titleId }, title),
      h('div', { id: bodyId }, body),
      h('div', { class: 'actions' }, cancel, confirm),
    );
    const dialog = h('dialog', { 'aria-labelledby': titleId, 'aria-describedby': bodyId }, form);
    let confirmed = false;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      confirmed = true;
      dialog.close();
    });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (returnFocusTo instanceof HTMLElement && returnFocusTo.isConnected) returnFocusTo.focus();
      resolve(confirmed);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
