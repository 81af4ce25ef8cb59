// MCP tokens: credentials for AI agents on the MCP endpoint (`POST /mcp`), each acting on
// one org within its scopes. Listed are the signed-in user's own tokens, of every org.

import { call } from '../api.js';
import { field, h, replace, row, table, uid, when } from '../dom.js';
import { confirmDialog } from '../dialog.js';
import { expiryFields } from '../expiry.js';
import { acting, announce, formError, submitting } from '../messages.js';
import { describeScopes, scopeFields } from '../scopes.js';
import { showSecret } from '../secret.js';

export async function renderMcpTokens(view, ctx) {
  const org = ctx.org;
  const secretSlot = h('div');
  const listHeading = h('h2', { id: uid('tokens'), tabindex: '-1' }, 'Your MCP tokens');
  const listSlot = h('div', {}, h('p', { class: 'muted' }, 'Loading tokens…'));
  const orgNames = new Map(ctx.orgs.map((known) => [known.id, known.name]));

  async function load() {
    const { data } = await call('GET', '/api/v1/mcp-tokens', { query: { limit: 100 } });
    const rows = data.map((token) => {
      const revoked = Boolean(token.revoked_at);
      const actions = h('td', { class: 'actions-cell' });
      if (!revoked) {
        const revoke = h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke ${token.name}` }, 'Revoke');
        revoke.addEventListener('click', () => revokeToken(token, revoke));
        actions.append(revoke);
      }
      return row(
        [
          h('strong', {}, token.name),
          orgNames.get(token.org_id) ?? token.org_id,
          h('code', { class: 'prefix' }, `${token.prefix}…`),
          h('div', {}, describeScopes(token.scopes)),
          when(token.created_at),
          when(token.last_used_at),
          revoked ? h('span', { class: 'status-revoked' }, 'revoked') : when(token.expires_at),
          actions,
        ],
        { 'data-testid': 'mcp-token-row', 'data-status': revoked ? 'revoked' : 'active' },
      );
    });
    replace(listSlot, table('Your MCP tokens', ['Name', 'Organization', 'Prefix', 'Scopes', 'Created', 'Last used', 'Expires', 'Actions'], rows, 'No MCP tokens yet.'));
  }

  async function revokeToken(token, button) {
    const confirmed = await confirmDialog({
      title: `Revoke ${token.name}?`,
      body: h('p', {}, 'Agents using this token lose access to the MCP server at once. This cannot be undone.'),
      confirmLabel: 'Revoke token',
      danger: true,
    });
    if (!confirmed) return;
    await acting(button, async () => {
      await call('DELETE', `/api/v1/mcp-tokens/${encodeURIComponent(token.id)}`);
      announce(`Token ${token.name} revoked.`);
      await load();
      listHeading.focus();
    });
  }

  const headingId = uid('create-token');
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: '100', autocomplete: 'off' });
  const scopes = scopeFields(['read:keys', 'read:usage']);
  const expiry = expiryFields();
  const error = formError();
  const form = h(
    'form',
    {},
    field('Name', name, 'Such as the agent or tool that uses it.'),
    scopes.fieldset,
    h('div', { class: 'inline-fields' }, expiry.fields),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create token')),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, error, async () => {
      const body = { name: name.value.trim(), org_id: org.id, scopes: scopes.read(), expires_at: expiry.read() };
      const created = await call('POST', '/api/v1/mcp-tokens', { body });
      name.value = '';
      // The secret first: it exists nowhere else, and the list's reload may fail.
      showSecret(secretSlot, {
        what: 'MCP token',
        name: created.name,
        secret: created.plain,
        note: 'Give it to your agent as its bearer token for the /mcp endpoint.',
        onDismiss: () => listHeading.focus(),
      });
      announce(`Token ${created.name} created. Copy it now: it is shown only once.`);
      await load();
    });
  });

  view.append(
    h(
      'div',
      { class: 'page-header' },
      h('h1', { tabindex: '-1' }, 'MCP tokens'),
      h('p', { class: 'muted' }, 'Tokens for AI agents on the Model Context Protocol endpoint ', h('code', {}, '/mcp'), '. A token acts on one organization, within its scopes.'),
    ),
    secretSlot,
    h('section', { class: 'card', 'aria-labelledby': headingId }, h('h2', { id: headingId }, `Create a token for ${org.name}`), form),
    h('section', { class: 'card', 'aria-labelledby': listHeading.id }, listHeading, listSlot),
  );
  await load();
}
