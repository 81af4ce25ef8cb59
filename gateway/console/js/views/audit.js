// The audit log: who did what to which object of the org, newest first, filtered by
// action and time, a page at a time.

import { call } from '../api.js';
import { field, h, replace, row, select, table, uid, when } from '../dom.js';
import { acting, formError, InputError, submitting } from '../messages.js';

/** The actions the platform writes, offered as suggestions (any text is accepted). */
const ACTIONS = [
  'org.created',
  'org.updated',
  'org.deleted',
  'member.added',
  'member.removed',
  'member.role_changed',
  'invitation.created',
  'invitation.accepted',
  'invitation.declined',
  'invitation.revoked',
  'api_key.created',
  'api_key.updated',
  'api_key.regenerated',
  'api_key.revoked',
  'api_key.leaked_revoked',
  'rotated_key_used',
  'mcp_token.created',
  'mcp_token.revoked',
  'mcp_token.leaked_revoked',
  'advisor.registered',
  'advisor.payload_key_declared',
  'advisor.payload_key_retired',
  'consultation.created',
  'consultation.answered',
];

/** A `datetime-local` value (local time) as RFC 3339, or undefined when empty. */
function instant(input, label) {
  if (!input.value) return undefined;
  const date = new Date(input.value);
  if (Number.isNaN(date.getTime())) throw new InputError(`${label} is not a valid time.`);
  return date.toISOString();
}

export async function renderAudit(view, ctx) {
  const org = ctx.org;
  const path = `/api/v1/developers/orgs/${encodeURIComponent(org.id)}/audit-log`;
  const listId = uid('audit-actions');
  const action = h('input', { type: 'text', name: 'action', list: listId, autocomplete: 'off', spellcheck: 'false' });
  const from = h('input', { type: 'datetime-local', name: 'from' });
  const to = h('input', { type: 'datetime-local', name: 'to' });
  const limit = select({ name: 'limit' }, [['25', '25'], ['50', '50'], ['100', '100']], '50');
  const error = formError();
  const form = h(
    'form',
    { role: 'search', 'aria-label': 'Filter the audit log' },
    h('datalist', { id: listId }, ACTIONS.map((value) => h('option', { value }))),
    h('div', { class: 'inline-fields' }, field('Action', action), field('From', from), field('To', to), field('Per page', limit)),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Apply filters'), h('button', { type: 'reset', class: 'secondary' }, 'Clear')),
    error,
  );
  const resultsHeading = h('h2', { id: uid('events'), tabindex: '-1' }, 'Events');
  const results = h('div', {}, h('p', { class: 'muted' }, 'Loading events…'));
  let events = [];
  let query = {};
  let cursor = null;

  async function load(more = false) {
    if (!more) {
      query = { action: action.value.trim() || undefined, from: instant(from, 'From'), to: instant(to, 'To'), limit: limit.value };
    }
    const page = await call('GET', path, { query: { ...query, cursor: more ? cursor : undefined } });
    events = more ? events.concat(page.data) : page.data;
    cursor = page.next_cursor;
    draw();
  }

  function draw() {
    const rows = events.map((entry) =>
      row(
        [
          when(entry.at),
          entry.actor.type === 'user' && entry.actor.id === ctx.user.id
            ? h('span', { title: entry.actor.id }, 'you')
            : h('span', {}, entry.actor.type, ' ', h('code', {}, entry.actor.id)),
          h('code', {}, entry.action),
          h('span', {}, entry.target.type, ' ', h('code', {}, entry.target.id)),
          entry.ip || h('span', { class: 'muted' }, '—'),
          metadata(entry.metadata),
        ],
        { 'data-testid': 'audit-row', 'data-action': entry.action },
      ),
    );
    const more = cursor ? h('button', { type: 'button', class: 'secondary' }, 'Show older events') : null;
    more?.addEventListener('click', () => acting(more, () => load(true)));
    replace(results, table(`Audit events of ${org.name}`, ['Time', 'Actor', 'Action', 'Target', 'IP', 'Details'], rows, 'No events match these filters.'), more);
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, error, async () => {
      await load();
      resultsHeading.focus();
    });
  });
  form.addEventListener('reset', () => {
    // After the fields are cleared: the reset event comes before.
    setTimeout(() => submitting(form, error, () => load()));
  });

  view.append(
    h(
      'div',
      { class: 'page-header' },
      h('h1', { tabindex: '-1' }, 'Audit log'),
      h('p', { class: 'muted' }, `Every change to ${org.name}, its keys and members, newest first. Admins only.`),
    ),
    h('section', { class: 'card', 'aria-label': 'Filters' }, form),
    h('section', { class: 'card', 'aria-labelledby': resultsHeading.id }, resultsHeading, results),
  );
  await load();
}

/** The event's metadata, compact: `name: value` pairs. */
function metadata(values) {
  const entries = Object.entries(values ?? {});
  if (entries.length === 0) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'mono' }, entries.map(([name, value]) => `${name}: ${typeof value === 'string' ? value : JSON.stringify(value)}`).join(', '));
}
