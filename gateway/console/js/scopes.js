// The scope catalogue (the REST contract's list), and the permission fields that pick
// from it for a key or an MCP token.

import { h, uid } from './dom.js';
import { InputError } from './messages.js';

export const CATALOGUE = [
  'read:orgs',
  'write:orgs',
  'read:keys',
  'write:keys',
  'read:usage',
  'read:families',
  'write:families',
  'read:policies',
  'write:policies',
];

/** Scopes as chips, or "all scopes" when the list is the whole catalogue. */
export function describeScopes(scopes) {
  if (CATALOGUE.every((scope) => scopes.includes(scope))) return h('span', { class: 'chip' }, 'all scopes');
  if (scopes.length === 0) return h('span', { class: 'muted' }, 'none');
  return scopes.map((scope) => h('span', { class: 'chip' }, scope));
}

/**
 * A fieldset: full access, or only the checked scopes. `read()` answers the `scopes` to
 * send (undefined for full access) or throws a message when none is checked.
 */
export function scopeFields(defaults) {
  const name = uid('access');
  const full = h('input', { type: 'radio', name, value: 'full' });
  const only = h('input', { type: 'radio', name, value: 'only', checked: true });
  const boxes = CATALOGUE.map((scope) => h('input', { type: 'checkbox', value: scope, checked: defaults.includes(scope) }));
  const grid = h('div', { class: 'scopes' }, boxes.map((box) => h('label', {}, box, h('code', {}, box.value))));
  const sync = () => {
    boxes.forEach((box) => { box.disabled = full.checked; });
    grid.setAttribute('aria-disabled', String(full.checked));
  };
  full.addEventListener('change', sync);
  only.addEventListener('change', sync);
  const fieldset = h(
    'fieldset',
    {},
    h('legend', {}, 'Permissions'),
    h('label', {}, full, 'Full access: every scope, today’s and tomorrow’s'),
    h('label', {}, only, 'Only these scopes:'),
    grid,
  );
  return {
    fieldset,
    read() {
      if (full.checked) return undefined;
      const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
      if (chosen.length === 0) throw new InputError('Choose at least one scope, or full access.');
      return chosen;
    },
  };
}
