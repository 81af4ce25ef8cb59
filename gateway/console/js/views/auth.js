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
 */
export function renderVerify(view, ctx) {
  const user = ctx.user;
  if (user?.email_verified) {
    view.append(
      authCard('Verify your address', null, h('p', {}, `${user.email} is verified.`), h('a', { href: '/console/keys' }, 'Go to your API keys')),
    );
    return;
  }
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
  const form = h(
    'form',
    {},
    field('Verification token', token, 'The token from the mail we sent you, starting with kpev_.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Verify address')),
    error,
  );
  const verify = () =>
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
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    verify();
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

  const intro = user
    ? `We sent a token to ${user.email}. Paste it here, or open the link in the mail.`
    : 'Paste the token from the verification mail, or open the link in the mail.';
  view.append(authCard('Verify your address', intro, form, more));
  if (ctx.params.token) {
    verify();
  } else if (ctx.navigated) {
    token.focus();
  }
}
