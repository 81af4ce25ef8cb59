// The console: pages at /console/<page> (the gateway serves this same document at each),
// switched in place with the History API. Everything it shows comes from the REST API.

import { call, forget, signOut, signedIn, whenSessionEnds } from './api.js';
import { h, replace, select } from './dom.js';
import { announce, clearAnnouncement, describe } from './messages.js';
import { renderSignIn, renderSignUp, renderVerify } from './views/auth.js';
import { renderKeys } from './views/keys.js';
import { renderUsage } from './views/usage.js';
import { renderMembers } from './views/members.js';
import { renderInvitations } from './views/invitations.js';
import { renderMcpTokens } from './views/mcp.js';
import { renderAdvisors } from './views/advisors.js';
import { renderAudit } from './views/audit.js';

/** Every page; `nav` pages are listed in the side navigation, in this order. */
const PAGES = {
  signin: { title: 'Sign in', public: true, render: renderSignIn },
  signup: { title: 'Create an account', public: true, render: renderSignUp },
  verify: { title: 'Verify your address', public: true, render: renderVerify },
  keys: { title: 'API keys', nav: true, render: renderKeys },
  usage: { title: 'Usage', nav: true, render: renderUsage },
  members: { title: 'Members', nav: true, render: renderMembers },
  invitations: { title: 'My invitations', nav: true, render: renderInvitations },
  'mcp-tokens': { title: 'MCP tokens', nav: true, render: renderMcpTokens },
  advisors: { title: 'Advisors', nav: true, render: renderAdvisors },
  audit: { title: 'Audit log', nav: true, render: renderAudit },
};

/** What the views know: who is signed in, the org they act on, and how to move on. */
const ctx = {
  user: null,
  org: null,
  orgs: [],
  params: {},
  navigated: false,
  navigate,
  sessionStarted,
  accountChanged,
  orgsChanged,
};

/** The page a signed-out visitor asked for, shown once they have signed in. */
let wanted = null;
/** What the next render hands the page, and says in the live region. */
let pending = { params: {}, message: null };

function pageFromPath() {
  const match = /^\/console(?:\/([a-z-]+))?$/.exec(location.pathname);
  const name = match?.[1];
  if (name && PAGES[name]) return name;
  return signedIn() ? 'keys' : 'signin';
}

/** Goes to `page`; `message` is announced there, other options become its params. */
function navigate(page, { message = null, replaceHistory = false, ...params } = {}) {
  pending = { params, message };
  const url = `/console/${page}`;
  if (replaceHistory) history.replaceState(null, '', url);
  else if (location.pathname !== url) history.pushState(null, '', url);
  render({ focus: true });
}

/** After signup or sign-in: who we are, and the developer org (made on first visit). */
async function sessionStarted({ page, message } = {}) {
  try {
    await accountChanged();
    const devOrg = await call('POST', '/api/ensure-dev-org', { body: {} });
    await loadOrgs(devOrg.id);
  } catch (error) {
    // No console without an org: signed out again, the form says why and can be retried.
    forget();
    ctx.user = null;
    throw error;
  }
  const next = page ?? wanted ?? 'keys';
  wanted = null;
  navigate(next, { message: message ?? `Signed in. Your organization is ${ctx.org.name}.` });
}

async function accountChanged() {
  ctx.user = (await call('GET', '/api/v1/auth/me')).user;
}

/** After joining or leaving an org: the list again, `selectId` chosen, the page redrawn. */
async function orgsChanged(selectId) {
  await loadOrgs(selectId ?? ctx.org?.id);
  await render({ focus: false });
}

async function loadOrgs(preferredId) {
  const listed = await call('GET', '/api/v1/developers/orgs', { query: { limit: 100 } });
  ctx.orgs = listed.data;
  ctx.org = ctx.orgs.find((org) => org.id === preferredId) ?? ctx.orgs[0] ?? null;
}

function signedOut(message) {
  forget();
  ctx.user = null;
  ctx.org = null;
  ctx.orgs = [];
  navigate('signin', { message, replaceHistory: true });
}

whenSessionEnds(() => signedOut('Your session has ended. Sign in again.'));

function renderAccount() {
  const account = document.getElementById('account');
  if (!signedIn() || !ctx.user) {
    account.replaceChildren();
    return;
  }
  const parts = [];
  if (ctx.orgs.length > 0) {
    const orgSelect = select(
      { id: 'org-select' },
      ctx.orgs.map((org) => [org.id, org.name]),
      ctx.org?.id,
    );
    orgSelect.addEventListener('change', async () => {
      ctx.org = ctx.orgs.find((org) => org.id === orgSelect.value) ?? ctx.org;
      await render({ focus: false });
      announce(`Now working in ${ctx.org.name}.`, 'info');
      document.getElementById('org-select')?.focus();
    });
    parts.push(h('label', { for: 'org-select' }, 'Organization'), orgSelect);
  }
  const out = h('button', { type: 'button', class: 'secondary small' }, 'Sign out');
  out.addEventListener('click', async () => {
    out.disabled = true;
    try {
      await signOut();
    } catch {
      // The tokens are forgotten whatever the server said.
    }
    signedOut('You are signed out.');
  });
  parts.push(h('span', { class: 'muted', 'data-testid': 'account-email' }, ctx.user.email), out);
  account.replaceChildren(...parts);
}

function renderNav(current) {
  const nav = document.getElementById('nav');
  if (!signedIn()) {
    nav.hidden = true;
    nav.replaceChildren();
    return;
  }
  nav.hidden = false;
  const items = Object.entries(PAGES)
    .filter(([, page]) => page.nav)
    .map(([name, page]) =>
      h('li', {}, h('a', { href: `/console/${name}`, 'aria-current': name === current ? 'page' : null }, page.title)),
    );
  replace(nav, h('ul', {}, items));
}

function unverifiedBanner() {
  if (!ctx.user || ctx.user.email_verified) return null;
  return h(
    'p',
    { class: 'banner' },
    `Your address ${ctx.user.email} is not verified yet: verify it to accept invitations. `,
    h('a', { href: '/console/verify' }, 'Verify your address'),
  );
}

let generation = 0;

async function render({ focus } = { focus: false }) {
  generation += 1;
  const mine = generation;
  let name = pageFromPath();
  if (!signedIn() && !PAGES[name].public) {
    wanted = name;
    name = 'signin';
  } else if (signedIn() && (name === 'signin' || name === 'signup')) {
    name = 'keys';
  }
  // The address bar names the page shown (`/console` itself becomes `/console/signin`).
  if (location.pathname !== `/console/${name}`) history.replaceState(null, '', `/console/${name}`);
  const page = PAGES[name];
  const { params, message } = pending;
  pending = { params: {}, message: null };
  ctx.params = params;
  // Moving focus is for moves the user made, not for the page they opened.
  ctx.navigated = focus;
  document.title = `${page.title} · Keyplane console`;
  renderAccount();
  renderNav(name);
  if (message) announce(message, 'ok');
  else clearAnnouncement();

  // Each render fills a fresh container: a page still loading when the user moves on
  // writes into a container no longer shown.
  const container = h('div', { 'data-page': name });
  document.getElementById('view').replaceChildren(container);
  if (signedIn() && name !== 'verify') {
    const banner = unverifiedBanner();
    if (banner) container.append(banner);
  }
  try {
    await page.render(container, ctx);
  } catch (error) {
    if (mine === generation) container.append(h('p', { class: 'form-error', role: 'alert' }, describe(error)));
  }
  if (focus && mine === generation && !container.contains(document.activeElement)) {
    container.querySelector('h1')?.focus();
  }
}

/** In-console links move without a reload (a reload would end the in-memory session). */
document.addEventListener('click', (event) => {
  const link = event.target instanceof Element ? event.target.closest('a[href^="/console"]') : null;
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
  event.preventDefault();
  const page = link.getAttribute('href').replace(/^\/console\/?/, '') || (signedIn() ? 'keys' : 'signin');
  navigate(page);
});

window.addEventListener('popstate', () => render({ focus: true }));

/**
 * A verification link (`#verify=<token>`): the token is taken, then cleared from the URL.
 * The verify page only offers it for confirmation; opening the link sends nothing.
 */
function takeVerificationLink() {
  const match = /^#verify=([A-Za-z0-9_-]{1,200})$/.exec(location.hash);
  if (!match) return false;
  pending = { params: { token: match[1] }, message: null };
  history.replaceState(null, '', '/console/verify');
  return true;
}

takeVerificationLink();
render({ focus: false });
