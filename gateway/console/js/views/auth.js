// Signing in, signing up, and verifying the address a mail was sent to.

import { anonymous, call, signIn, signUp, signedIn } from '../api.js';
import { field, h, replace } from '../dom.js';
import { announce, describe, formError, submitting } from '../messages.js';

function authCard(title, intro, ...content) {
  return h(
    'div',
    { class: 'auth' },
    h('div', { class: 'card' }, h('h1', { tabindex: '-1' }, title), intro ? h('p', { class: 'muted' }, intro) : null, content),
  );
}

function emailInput(value) {
  return h('input', { type: 'email', name: 'email', required: true, autocomplete: 'email', value: value ?? '' });
}

export function renderSignIn(view, ctx) {
  const email = emailInput(ctx.params.email);
  const password = h('input', { type: 'password', name: 'password', required: true, autocomplete: 'current-password' });
  const error = formError();
  const form = h(
    'form',
    {},
    field('Email', email),
    field('Password', password),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in')),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, error, async () => {
      await signIn(email.value.trim(), password.value);
      password.value = '';
      await ctx.sessionStarted();
    });
  });
  view.append(
    authCard(
      'Sign in',
      'Sign in to manage your organization, API keys and usage.',
      form,
      h(
        'div',
        { class: 'links' },
        h('a', { href: '/console/signup' }, 'Create an account'),
        h('a', { href: '/console/verify' }, 'Verify your address with a token'),
      ),
    ),
  );
  if (ctx.navigated) (ctx.params.email ? password : email).focus();
}

export function renderSignUp(view, ctx) {
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'name', maxlength: '200' });
  const email = emailInput();
  const password = h('input', {
    type: 'password',
    name: 'password',
    required: true,
    minlength: '8',
    autocomplete: 'new-password',
  });
  const error = formError();
  const form = h(
    'form',
    {},
    field('Name (optional)', name),
    field('Email', email, 'We send a token to this address to verify it.'),
    field('Password', password, 'At least 8 characters.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create account')),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, error, async () => {
      const user = await signUp(email.value.trim(), password.value, name.value.trim());
      password.value = '';
      await ctx.sessionStarted({ page: 'verify', message: `Account created. We sent a verification token to ${user.email}.` });
    });
  });
  view.append(
    authCard(
      'Create an account',
      'Your developer organization is created the first time you open the console.',
      form,
      h('div', { class: 'links' }, h('a', { href: '/console/signin' }, 'I already have an account')),
    ),
  );
  if (ctx.navigated) email.focus();
}

/**
 * The token from the mail, pasted here or carried by the mail's link
 * (`/console/verify#verify=<token>`, which the app hands over as `ctx.params.token`).
 *
 * A token from the link is put in the field and never sent by itself: opening the link
 * is not consent. Mail scanners run a link's JavaScript, and whoever holds the mailbox
 * may open a link meant to verify an impostor's signup with their address (an impostor
 * verified that way could accept invitations sent to it). Only a click on the button,
 * or Enter in the form, verifies.
 *
 * Verifying does not require being signed in, as the API does not (`POST
 * /api/v1/auth/verify-email` takes the token alone: it proves the mailbox, not the
 * session). The link is often opened on another device than the one signed up on, a
 * phone's mail app say, and the console keeps its session in memory only, so every
 * opened link starts signed out: a sign-in first would ask the real user for a password
 * the API does not need. Binding the token to a signed-in account would be the API's to
 * enforce; what the console adds is the deliberate click, under a warning for whoever
 * did not sign up.
 */
export function renderVerify(view, ctx) {
  const user = ctx.user;
  if (user?.email_verified) {
    view.append(
      authCard('Verify your address', null, h('p', {}, `${user.email} is verified.`), h('a', { href: '/console/keys' }, 'Go to your API keys')),
    );
    return;
  }
  const fromLink = Boolean(ctx.params.token);
  const token = h('input', {
    type: 'text',
    name: 'token',
    required: true,
    autocomplete: 'one-time-code',
    spellcheck: 'false',
    class: 'mono',
    value: ctx.params.token ?? '',
  });
  const error = formError();
  // From the link, the button names what it does: the address, when the console knows
  // it (signed in), or else just "this address" (the token does not say whose it is
  // until it is spent).
  let label = 'Verify address';
  if (fromLink) label = user ? `Verify ${user.email}` : 'Verify this address';
  const form = h(
    'form',
    {},
    field('Verification token', token, 'The token from the mail we sent you, starting with kpev_.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, label)),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, error, async () => {
      const answer = await anonymous('POST', '/api/v1/auth/verify-email', { body: { token: token.value.trim() } });
      const email = answer.user.email;
      if (signedIn()) {
        await ctx.accountChanged();
        ctx.navigate('keys', { message: `Your address ${email} is verified.` });
      } else {
        ctx.navigate('signin', { message: `Your address ${email} is verified. Sign in to continue.`, email });
      }
    });
  });

  const more = [];
  if (signedIn()) {
    const resendError = formError();
    const resend = h('button', { type: 'button', class: 'secondary' }, 'Send a new token');
    const resendForm = h('div', { class: 'actions' }, resend, h('a', { href: '/console/keys' }, 'Verify later'));
    resend.addEventListener('click', async () => {
      resend.disabled = true;
      resendError.replaceChildren();
      try {
        await call('POST', '/api/v1/auth/verify-email/resend');
        announce(`We sent a new token to ${user.email}.`);
      } catch (failure) {
        replace(resendError, describe(failure));
      } finally {
        resend.disabled = false;
      }
    });
    more.push(resendForm, resendError);
  } else {
    more.push(h('div', { class: 'links' }, h('a', { href: '/console/signin' }, 'Sign in'), h('a', { href: '/console/signup' }, 'Create an account')));
  }

  if (fromLink) {
    const whose = user ? user.email : 'the address the mail was sent to';
    view.append(
      authCard(
        'Verify your email address',
        `You opened the link in our verification mail. Nothing is verified until you press the button: it confirms that you signed up for Keyplane with ${whose}.`,
        h('p', { class: 'banner' }, 'If you did not sign up for Keyplane, ignore this and close the page.'),
        form,
        more,
      ),
    );
    return;
  }
  const intro = user
    ? `We sent a token to ${user.email}. Paste it here, or open the link in the mail.`
    : 'Paste the token from the verification mail, or open the link in the mail.';
  view.append(authCard('Verify your address', intro, form, more));
  if (ctx.navigated) token.focus();
}
