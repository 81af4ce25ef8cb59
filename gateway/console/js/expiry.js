// When a key or token stops working: never, after a preset period, or at the end of a
// chosen day (local time).

import { field, h, select, uid } from './dom.js';
import { InputError } from './messages.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const PRESETS = [
  ['never', 'Never'],
  ['7', 'In 7 days'],
  ['30', 'In 30 days'],
  ['90', 'In 90 days'],
  ['365', 'In a year'],
  ['date', 'On a date…'],
];

/** The fields, and `read()` answering an RFC 3339 time or undefined (never). */
export function expiryFields() {
  const choice = select({ id: uid('expiry') }, PRESETS, 'never');
  const date = h('input', { type: 'date', id: uid('expiry-date') });
  const dateField = field('Expiry date', date, 'It stops working at the end of this day.');
  dateField.hidden = true;
  choice.addEventListener('change', () => {
    dateField.hidden = choice.value !== 'date';
    date.required = choice.value === 'date';
  });
  return {
    fields: [field('Expires', choice), dateField],
    read() {
      if (choice.value === 'never') return undefined;
      if (choice.value !== 'date') return new Date(Date.now() + Number(choice.value) * DAY_MS).toISOString();
      if (!date.value) throw new InputError('Choose the expiry date.');
      const end = new Date(`${date.value}T23:59:59`);
      if (Number.isNaN(end.getTime()) || end.getTime() <= Date.now()) {
        throw new InputError('The expiry date must be in the future.');
      }
      return end.toISOString();
    },
  };
}
