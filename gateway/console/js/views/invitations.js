// My invitations: the pending invitations to the signed-in user's verified address, to
// accept (joining the org) or decline.

import { call } from '../api.js';
import { h, replace, row, table, uid, when } from '../dom.js';
import { acting, announce } from '../messages.js';

export async function renderInvitations(view, ctx) {
  const heading = h('h2', { id: uid('mine'), tabindex: '-1' }, 'Pending invitations');
  const slot = h('div', {}, h('p', { class: 'muted' }, 'Loading invitations…'));

  async function load() {
    const { data } = await call('GET', '/api/v1/invitations', { query: { limit: 100 } });
    const rows = data.map((invitation) => {
      const orgName = invitation.org_name || invitation.org_id;
      const accept = h('button', { type: 'button', class: 'small', 'aria-label': `Accept the invitation to ${orgName}` }, 'Accept');
      const decline = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Decline the invitation to ${orgName}` }, 'Decline');
      accept.addEventListener('click', () =>
        acting(accept, async () => {
          await call('POST', `/api/v1/invitations/${encodeURIComponent(invitation.id)}/accept`, { body: {} });
          await ctx.orgsChanged(invitation.org_id);
          announce(`You joined ${orgName} as ${invitation.role}. It is now selected above.`);
        }),
      );
      decline.addEventListener('click', () =>
        acting(decline, async () => {
          await call('POST', `/api/v1/invitations/${encodeURIComponent(invitation.id)}/decline`, { body: {} });
          announce(`You declined the invitation to ${orgName}.`);
          await load();
          heading.focus();
        }),
      );
      return row([orgName, invitation.role, when(invitation.expires_at), h('td', { class: 'actions-cell' }, accept, decline)], {
        'data-testid': 'my-invitation-row',
      });
    });
    replace(slot, table('Invitations to you', ['Organization', 'Role', 'Expires', 'Actions'], rows, 'No pending invitations.'));
  }

  view.append(
    h(
      'div',
      { class: 'page-header' },
      h('h1', { tabindex: '-1' }, 'My invitations'),
      h('p', { class: 'muted' }, `Invitations to ${ctx.user.email}, from other organizations.`),
    ),
    h('section', { class: 'card', 'aria-labelledby': heading.id }, heading, slot),
  );
  await load();
}
