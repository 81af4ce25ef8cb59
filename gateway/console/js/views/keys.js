// The Keys page: create a key (its secret shown once), list the org's keys, regenerate
// one with a grace period for the old secret, revoke one.

import { call, callWithHeaders } from '../api.js';
import { field, h, replace, row, select, table, uid, when } from '../dom.js';
import { confirmDialog } from '../dialog.js';
import { expiryFields } from '../expiry.js';
import { acting, announce, formError, submitting } from '../messages.js';
import { describeScopes, scopeFields } from '../scopes.js';
import { showSecret } from '../secret.js';

const GRACE_PERIODS = [
  ['0', 'No grace period: refuse it now'],
  ['3600', '1 hour'],
  ['86400', '24 hours'],
  ['604800', '7 days'],
];

/** The cursor of the next page, from the list's `Link: <…cursor=…>; rel="next"`. */
function nextCursor(headers) {
  const link = headers.get('Link');
  const match = link && /<[^>]*[?&]cursor=([^&>]+)[^>]*>;\s*rel="next"/.exec(link);
  return match ? decodeURIComponent(match[1]) : null;
}

export async function renderKeys(view, ctx) {
  const org = ctx.org;
  const keysPath = `/api/v1/developers/orgs/${encodeURIComponent(org.id)}/keys`;
  const secretSlot = h('div');
  const listHeading = h('h2', { id: uid('keys-heading'), tabindex: '-1' }, 'Keys');
  const listSlot = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading keys…'));
  let keys = [];
  let cursor = null;

  const focusList = () => listHeading.focus();

  async function load(more = false) {
    const { body, headers } = await callWithHeaders('GET', keysPath, {
      query: { limit: 100, cursor: more ? cursor : undefined },
    });
    keys = more ? keys.concat(body) : body;
    cursor = nextCursor(headers);
    drawList();
  }

  function drawList() {
    listSlot.removeAttribute('aria-busy');
    const rows = keys.map((key) => {
      const actions = h('td', { class: 'actions-cell' });
      if (key.status === 'active') {
        const regenerate = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Regenerate ${key.name}` }, 'Regenerate');
        const revoke = h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke ${key.name}` }, 'Revoke');
        regenerate.addEventListener('click', () => regenerateKey(key, regenerate));
        revoke.addEventListener('click', () => revokeKey(key, revoke));
        actions.append(regenerate, revoke);
      }
      return row(
        [
          h('div', {}, h('strong', {}, key.name), h('span', { class: 'sub' }, key.environment)),
          h('code', { class: 'prefix' }, `${key.prefix}…`),
          h(
            'div',
            {},
            describeScopes(key.scopes),
            key.resource_ids.length ? h('span', { class: 'sub' }, 'only ', key.resource_ids.join(', ')) : null,
          ),
          when(key.last_used_at),
          h(
            'div',
            {},
            when(key.expires_at),
            key.grace_ends_at && key.status === 'active'
              ? h('span', { class: 'sub' }, 'old secret until ', when(key.grace_ends_at))
              : null,
          ),
          h('span', { class: `status-${key.status}` }, key.status),
          actions,
        ],
        { 'data-testid': 'key-row', 'data-key-id': key.id, 'data-status': key.status },
      );
    });
    const more = cursor ? h('button', { type: 'button', class: 'secondary' }, 'Show more keys') : null;
    more?.addEventListener('click', () => acting(more, () => load(true)));
    replace(
      listSlot,
      table(
        `API keys of ${org.name}`,
        ['Name', 'Prefix', 'Scopes and resources', 'Last used', 'Expires', 'Status', 'Actions'],
        rows,
        'No keys yet: create the first one above.',
      ),
      more,
    );
  }

  async function regenerateKey(key, button) {
    const grace = select({ id: uid('grace') }, GRACE_PERIODS, '86400');
    const confirmed = await confirmDialog({
      title: `Regenerate ${key.name}?`,
      body: [
        h('p', {}, 'A new secret replaces the current one. During the grace period the current secret keeps working, so running clients can move over; each use of it is written to the audit log.'),
        field('The current secret keeps working for', grace),
      ],
      confirmLabel: 'Regenerate key',
    });
    if (!confirmed) return;
    await acting(button, async () => {
      const answer = await call('POST', `${keysPath}/${encodeURIComponent(key.id)}/regenerate`, {
        body: { grace_period_seconds: Number(grace.value) },
      });
      const note = answer.grace_ends_at
        ? `The previous secret works until ${new Date(answer.grace_ends_at).toLocaleString()}.`
        : 'The previous secret no longer works.';
      // The secret first: it exists nowhere else, and the list's reload may fail.
      showSecret(secretSlot, { what: 'API key', name: answer.name, secret: answer.key, note, onDismiss: focusList });
      announce(`Key ${key.name} regenerated. Copy the new secret now.`);
      await load();
    });
  }

  async function revokeKey(key, button) {
    const confirmed = await confirmDialog({
      title: `Revoke ${key.name}?`,
      body: h('p', {}, `Every request with ${key.prefix}… is refused from now on, on every gateway within a second. This cannot be undone.`),
      confirmLabel: 'Revoke key',
      danger: true,
    });
    if (!confirmed) return;
    await acting(button, async () => {
      await call('DELETE', `${keysPath}/${encodeURIComponent(key.id)}`);
      await load();
      announce(`Key ${key.name} revoked.`);
      focusList();
    });
  }

  view.append(
    h(
      'div',
      { class: 'page-header' },
      h('h1', { tabindex: '-1' }, 'API keys'),
      h('p', { class: 'muted' }, `Keys of ${org.name}. A backend sends one as `, h('code', {}, 'Authorization: Bearer <key>'), ' to the data plane, ', h('code', {}, '/api/v1/developer/*'), '.'),
    ),
    secretSlot,
    createForm(org, keysPath, async (created) => {
      // The secret first: it exists nowhere else, and the list's reload may fail.
      showSecret(secretSlot, { what: 'API key', name: created.name, secret: created.key, onDismiss: focusList });
      announce(`Key ${created.name} created. Copy it now: it is shown only once.`);
      await load();
    }),
    h('section', { class: 'card', 'aria-labelledby': listHeading.id }, listHeading, listSlot),
  );
  await load();
}

function createForm(org, keysPath, created) {
  const headingId = uid('create-key');
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: '100', autocomplete: 'off' });
  const environment = uid('environment');
  const test = h('input', { type: 'radio', name: environment, value: 'test', checked: true });
  const live = h('input', { type: 'radio', name: environment, value: 'live' });
  const scopes = scopeFields(['read:families']);
  const resources = h('input', { type: 'text', name: 'resources', autocomplete: 'off', spellcheck: 'false' });
  const expiry = expiryFields();
  const error = formError();
  const form = h(
    'form',
    {},
    field('Name', name, 'For you to tell keys apart, such as the service that uses it.'),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Environment'),
      h('label', {}, test, 'Test: sees only test data'),
      h('label', {}, live, 'Live: production data'),
    ),
    scopes.fieldset,
    field('Resource IDs (optional)', resources, 'Pin the key to these data-plane resources, separated by spaces or commas. Empty: any resource.'),
    h('div', { class: 'inline-fields' }, expiry.fields),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create key')),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, error, async () => {
      const body = {
        name: name.value.trim(),
        environment: live.checked ? 'live' : 'test',
        scopes: scopes.read(),
        resource_ids: resources.value.split(/[\s,]+/).filter(Boolean),
        expires_at: expiry.read(),
      };
      const answer = await call('POST', keysPath, { body });
      // The permission choices stay as they were, for the next key.
      name.value = '';
      resources.value = '';
      await created(answer);
    });
  });
  return h('section', { class: 'card', 'aria-labelledby': headingId }, h('h2', { id: headingId }, 'Create a key'), form);
}
