// The Members page: who belongs to the org and with which role, inviting someone (nobody
// joins without accepting), and the org's invitations.

import { call } from '../api.js';
import { field, h, replace, row, select, table, uid, when } from '../dom.js';
import { confirmDialog } from '../dialog.js';
import { acting, announce, formError, submitting } from '../messages.js';

const ROLES = [
  ['member', 'Member: uses keys, sees usage'],
  ['admin', 'Admin: manages keys, members and advisors'],
  ['owner', 'Owner: everything, deleting the org too'],
];

export async function renderMembers(view, ctx) {
  const org = ctx.org;
  const orgPath = `/api/v1/developers/orgs/${encodeURIComponent(org.id)}`;
  const membersHeading = h('h2', { id: uid('members'), tabindex: '-1' }, 'Members');
  const invitationsHeading = h('h2', { id: uid('invitations'), tabindex: '-1' }, 'Invitations');
  const membersSlot = h('div', {}, h('p', { class: 'muted' }, 'Loading members…'));
  const invitationsSlot = h('div', {}, h('p', { class: 'muted' }, 'Loading invitations…'));

  async function loadMembers() {
    const { data } = await call('GET', `${orgPath}/members`, { query: { limit: 100 } });
    const rows = data.map((member) => {
      const isMe = member.user_id === ctx.user.id;
      const role = select({ 'aria-label': `Role of ${member.email}` }, ROLES.map(([value]) => [value, value]), member.role);
      const save = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Save the role of ${member.email}` }, 'Save role');
      const remove = h('button', { type: 'button', class: 'danger small', 'aria-label': `${isMe ? 'Leave' : 'Remove'} ${member.email}` }, isMe ? 'Leave' : 'Remove');
      save.addEventListener('click', () =>
        acting(save, async () => {
          await call('PUT', `${orgPath}/members/${encodeURIComponent(member.user_id)}`, { body: { role: role.value } });
          announce(`${member.email} is now ${role.value}.`);
          await loadMembers();
        }),
      );
      remove.addEventListener('click', () => removeMember(member, isMe, remove));
      return row(
        [
          h('span', {}, member.name || member.email, isMe ? h('span', { class: 'muted' }, ' (you)') : null),
          member.email,
          h('div', { class: 'actions' }, role, save),
          when(member.joined_at),
          h('td', { class: 'actions-cell' }, remove),
        ],
        { 'data-testid': 'member-row' },
      );
    });
    replace(membersSlot, table(`Members of ${org.name}`, ['Name', 'Email', 'Role', 'Joined', 'Actions'], rows, 'No members.'));
  }

  async function removeMember(member, isMe, button) {
    const confirmed = await confirmDialog({
      title: isMe ? `Leave ${org.name}?` : `Remove ${member.email}?`,
      body: h('p', {}, isMe ? 'You lose access to its keys, usage and audit log.' : `${member.email} loses access to ${org.name} at once.`),
      confirmLabel: isMe ? 'Leave organization' : 'Remove member',
      danger: true,
    });
    if (!confirmed) return;
    await acting(button, async () => {
      await call('DELETE', `${orgPath}/members/${encodeURIComponent(member.user_id)}`);
      announce(isMe ? `You left ${org.name}.` : `${member.email} was removed.`);
      await loadMembers();
      membersHeading.focus();
    });
  }

  async function loadInvitations() {
    let invitations;
    try {
      ({ data: invitations } = await call('GET', `${orgPath}/invitations`, { query: { limit: 100 } }));
    } catch (error) {
      // Members may not list invitations: say so instead of failing the page.
      if (error.status === 403) {
        replace(invitationsSlot, h('p', { class: 'muted' }, 'Only admins see the invitations.'));
        return;
      }
      throw error;
    }
    const rows = invitations.map((invitation) => {
      const actions = h('td', { class: 'actions-cell' });
      if (invitation.status === 'pending') {
        const revoke = h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke the invitation of ${invitation.email}` }, 'Revoke');
        revoke.addEventListener('click', () =>
          acting(revoke, async () => {
            await call('DELETE', `${orgPath}/invitations/${encodeURIComponent(invitation.id)}`);
            announce(`The invitation of ${invitation.email} was revoked.`);
            await loadInvitations();
            invitationsHeading.focus();
          }),
        );
        actions.append(revoke);
      }
      return row(
        [invitation.email, invitation.role, h('span', { class: `status-${invitation.status}` }, invitation.status), when(invitation.created_at), when(invitation.expires_at), actions],
        { 'data-testid': 'invitation-row', 'data-status': invitation.status },
      );
    });
    replace(invitationsSlot, table(`Invitations to ${org.name}`, ['Email', 'Role', 'Status', 'Sent', 'Expires', 'Actions'], rows, 'No invitations yet.'));
  }

  view.append(
    h(
      'div',
      { class: 'page-header' },
      h('h1', { tabindex: '-1' }, 'Members'),
      h('p', { class: 'muted' }, `People in ${org.name}. An invited address joins once its owner has verified it and accepted.`),
    ),
    h('section', { class: 'card', 'aria-labelledby': membersHeading.id }, membersHeading, membersSlot),
    inviteForm(orgPath, async (invitation) => {
      announce(`Invitation sent to ${invitation.email}.`);
      await loadInvitations();
    }),
    h('section', { class: 'card', 'aria-labelledby': invitationsHeading.id }, invitationsHeading, invitationsSlot),
  );
  await Promise.all([loadMembers(), loadInvitations()]);
}

function inviteForm(orgPath, invited) {
  const headingId = uid('invite');
  const email = h('input', { type: 'email', name: 'email', required: true, autocomplete: 'off' });
  const role = select({ name: 'role' }, ROLES, 'member');
  const error = formError();
  const form = h(
    'form',
    {},
    h('div', { class: 'inline-fields' }, field('Email', email), field('Role', role)),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Send invitation')),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, error, async () => {
      const invitation = await call('POST', `${orgPath}/invitations`, { body: { email: email.value.trim(), role: role.value } });
      email.value = '';
      await invited(invitation);
    });
  });
  return h('section', { class: 'card', 'aria-labelledby': headingId }, h('h2', { id: headingId }, 'Invite someone'), form);
}
