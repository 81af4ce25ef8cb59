// Drives the Keyplane console in headless Chromium through the whole funnel, as a user
// would: sign up, verify the address, sign in, a key created, copied, used, seen in the
// usage chart and revoked; then members, my invitations, MCP tokens, advisors and the
// audit log, and the verification link of a mail (which verifies nothing until clicked).
// A screenshot of each page goes to $KEYPLANE_SCREENSHOTS. Exits non-zero, saying which
// step failed and why, on any failure and on any Content-Security-Policy violation or
// script error in the page.
//
// Run by tests/e2e/console.rs with:
//   KEYPLANE_GATEWAY_URL   the gateway, e.g. http://127.0.0.1:4000
//   KEYPLANE_SCREENSHOTS   where the PNGs go
//   KEYPLANE_NODE_MODULES  where tests/tools.sh installed playwright-core
//   KEYPLANE_PUBLIC_URL    what the platform's mails link to
//   KEYPLANE_CHROMIUM      the browser (default /usr/bin/chromium)

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const gateway = required('KEYPLANE_GATEWAY_URL').replace(/\/$/, '');
const screenshots = required('KEYPLANE_SCREENSHOTS');
const nodeModules = required('KEYPLANE_NODE_MODULES');
const publicUrl = required('KEYPLANE_PUBLIC_URL');
const chromiumPath = process.env.KEYPLANE_CHROMIUM || '/usr/bin/chromium';

/** Each step's bound, and the whole run's: the Rust test waits 60 s at most. */
const STEP_MS = 15_000;
const RUN_MS = 45_000;
/** How long Playwright waits for an element to appear or become actionable. */
const ACTION_MS = 5_000;

const { chromium } = await import(pathToFileURL(join(nodeModules, 'playwright-core/index.mjs')).href);

function required(name) {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
}

function fail(message) {
  console.error(`console.mjs: FAILED: ${message}`);
  process.exit(1);
}

const log = (message) => console.log(`console.mjs: ${message}`);
const started = Date.now();

// ---------------------------------------------------------------------------------------
// The page's own errors: a CSP violation or an uncaught script error fails the run. A
// failed request the console expects (a 4xx it shows the user) is only noted.

const pageProblems = [];

function watch(page) {
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    if (/Content[- ]Security[- ]Policy/i.test(text)) {
      pageProblems.push(`CSP violation: ${text}`);
    } else if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) {
      log(`(expected) ${text}`);
    } else {
      pageProblems.push(`console error: ${text}`);
    }
  });
  page.on('pageerror', (error) => pageProblems.push(`uncaught error in the page: ${error.message}`));
}

function assertNoPageProblems() {
  if (pageProblems.length > 0) throw new Error(pageProblems.join('\n'));
}

// ---------------------------------------------------------------------------------------
// Steps: each bounded, named in the failure message, with a screenshot of what was on
// screen when it failed.

let currentPage = null;

async function step(name, action) {
  const begun = Date.now();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${STEP_MS} ms`)), STEP_MS);
  });
  try {
    await Promise.race([action(), timeout]);
    assertNoPageProblems();
  } catch (error) {
    let onScreen = '';
    if (currentPage) {
      await currentPage.screenshot({ path: join(screenshots, 'failure.png'), fullPage: true }).catch(() => {});
      const status = await currentPage.locator('#status').textContent({ timeout: 500 }).catch(() => '');
      onScreen = `\n  at ${currentPage.url()}\n  live region: ${JSON.stringify(status)}\n  screenshot: ${join(screenshots, 'failure.png')}`;
    }
    throw new Error(`step "${name}": ${error.message}${onScreen}`);
  } finally {
    clearTimeout(timer);
  }
  log(`ok  ${name} (${Date.now() - begun} ms)`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(page, name) {
  await page.screenshot({ path: join(screenshots, name), fullPage: true });
}

/** Polls `probe` every `everyMs` until it answers true, for at most `forMs`. */
async function until(probe, { forMs, everyMs = 250, what }) {
  const deadline = Date.now() + forMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${forMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

// ---------------------------------------------------------------------------------------
// The platform as a client outside the browser sees it.

async function api(method, path, { bearer, body } = {}) {
  const headers = {};
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${gateway}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: the text says what it was.
  }
  return { status: response.status, json, text };
}

/** The newest verification mail the development mailbox holds for `email`. */
async function verificationMail(email) {
  let mail = null;
  await until(
    async () => {
      const mails = await api('GET', `/dev/mailbox?to=${encodeURIComponent(email)}`);
      check(mails.status === 200, `GET /dev/mailbox answered ${mails.status}: ${mails.text}`);
      mail = mails.json.find((found) => found.kind === 'verify_email' && found.token) ?? null;
      return mail !== null;
    },
    { forMs: 10_000, what: `a verification mail to ${email}` },
  );
  return mail;
}

// ---------------------------------------------------------------------------------------
// Page helpers: elements found the way a user (or a screen reader) finds them.

const heading = (page, name) => page.getByRole('heading', { level: 1, name, exact: true });

async function onPage(page, name) {
  await heading(page, name).waitFor();
}

async function said(page, pattern) {
  await page.locator('#status').filter({ hasText: pattern }).waitFor();
}

async function go(page, link, title) {
  await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: link, exact: true }).click();
  await onPage(page, title);
}

// ---------------------------------------------------------------------------------------

const runTimer = setTimeout(() => fail(`the run took over ${RUN_MS} ms`), RUN_MS);
const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: ['--no-sandbox'],
});

try {
  const context = await browser.newContext({ baseURL: gateway, viewport: { width: 1280, height: 860 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gateway });
  const page = await context.newPage();
  page.setDefaultTimeout(ACTION_MS);
  currentPage = page;
  watch(page);

  const unique = Math.random().toString(16).slice(2, 10);
  const email = `console-${unique}@example.com`;
  const password = 'correct horse battery staple';
  const keyName = `console-key-${unique}`;
  let secret = null;

  await step('the console opens on the sign-in page, keyboard first', async () => {
    const response = await page.goto('/console');
    check(response.status() === 200, `GET /console answered ${response.status()}`);
    await onPage(page, 'Sign in');
    check(new URL(page.url()).pathname === '/console/signin', `at ${page.url()}`);
    await page.keyboard.press('Tab');
    const first = await page.evaluate(() => document.activeElement?.textContent?.trim());
    check(first === 'Skip to content', `the first Tab reaches ${JSON.stringify(first)}, not the skip link`);
    await shot(page, '01-sign-in.png');
  });

  await step('sign up', async () => {
    await page.getByRole('link', { name: 'Create an account' }).click();
    await onPage(page, 'Create an account');
    await page.getByLabel('Name (optional)').fill('Console Tester');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await shot(page, '02-sign-up.png');
    await page.getByRole('button', { name: 'Create account' }).click();
    await onPage(page, 'Verify your address');
    await said(page, `We sent a verification token to ${email}`);
  });

  await step('verify the address with the mailed token (a wrong one is refused first)', async () => {
    await page.getByLabel('Verification token').fill('kpev_not-a-real-token');
    await page.getByRole('button', { name: 'Verify address' }).click();
    const refusal = page.getByRole('alert').filter({ hasText: /\S/ });
    await refusal.waitFor();
    const shown = (await refusal.innerText()).trim();
    const refused = await api('POST', '/api/v1/auth/verify-email', { body: { token: 'kpev_not-a-real-token' } });
    check(shown.startsWith(refused.json.message), `the page says ${JSON.stringify(shown)}, the API ${refused.text}`);
    check(/Request id: \S+$/.test(shown), `the refusal shows no request id: ${shown}`);
    log(`a wrong token is refused with the API's message: ${JSON.stringify(shown)}`);
    const { token } = await verificationMail(email);
    await page.getByLabel('Verification token').fill(token);
    await shot(page, '03-verify.png');
    await page.getByRole('button', { name: 'Verify address' }).click();
    await onPage(page, 'API keys');
    await said(page, `Your address ${email} is verified`);
  });

  await step('sign out, and sign in again (Enter submits): the same org, made on the first visit', async () => {
    const org = page.getByLabel('Organization');
    const orgName = (await org.locator('option:checked').textContent()).trim();
    check(orgName === "Console Tester's org", `the org is ${JSON.stringify(orgName)}`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await onPage(page, 'Sign in');
    await said(page, 'You are signed out');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    // From the keyboard: Enter in the password field submits.
    await page.getByLabel('Password').press('Enter');
    await onPage(page, 'API keys');
    await said(page, `Signed in. Your organization is ${orgName}`);
    check((await org.locator('option').count()) === 1, 'one org, not a second one');
    check((await page.getByTestId('account-email').textContent()) === email, 'the header names the account');
    await page.getByText('No keys yet').waitFor();
    await shot(page, '04-keys.png');
  });

  await step('create a key: the secret is shown once, and the copy button copies it', async () => {
    await page.getByLabel('Name', { exact: true }).fill(keyName);
    await page.getByLabel('read:usage').check();
    await page.getByLabel('Expires').selectOption({ label: 'In 30 days' });
    await page.getByRole('button', { name: 'Create key' }).click();
    const shown = page.getByTestId('secret-value');
    await shown.waitFor();
    secret = await shown.inputValue();
    check(/^phosra_test_[0-9a-f]{64}$/.test(secret), `the secret looks wrong: ${secret}`);
    await page.getByText('This is the only time the API key is shown').waitFor();
    await page.getByRole('button', { name: 'Copy', exact: true }).click();
    await said(page, 'Copied to the clipboard');
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    check(copied === secret, `the clipboard holds ${JSON.stringify(copied)}, not the secret`);
    const row = page.getByTestId('key-row').filter({ hasText: keyName });
    await row.waitFor();
    const rowText = await row.textContent();
    check(rowText.includes(secret.slice(0, 16)), `the row shows no prefix ${secret.slice(0, 16)}: ${rowText}`);
    check(rowText.includes('read:usage') && rowText.includes('read:families'), `the row shows the wrong scopes: ${rowText}`);
    check(!rowText.includes(secret.slice(16)), 'the list shows the secret');
    await shot(page, '05-key-created.png');
    await page.getByRole('button', { name: 'I have stored it' }).click();
    check((await page.getByTestId('secret-value').count()) === 0, 'the secret is still on the page');
  });

  await step('the copied key works on the data plane', async () => {
    const families = await api('GET', '/api/v1/developer/families', { bearer: secret });
    check(families.status === 200, `GET /api/v1/developer/families answered ${families.status}: ${families.text}`);
    check(Array.isArray(families.json), `not a JSON array: ${families.text}`);
  });

  await step('the request shows in the usage chart', async () => {
    await go(page, 'Usage', 'Usage');
    const keyChoice = page.getByLabel('Requests of');
    const keyId = await keyChoice.locator('option', { hasText: keyName }).getAttribute('value');
    await keyChoice.selectOption(keyId);
    // The gateway flushes its counts every second (KEYPLANE_USAGE_FLUSH_MS, 1000 by default).
    // The org's chart counts the console's own calls too: only the key's chart will do.
    const total = page.getByTestId('usage-total');
    await until(
      async () => {
        await page.getByRole('button', { name: 'Refresh' }).click();
        await said(page, 'Usage updated');
        return (await total.getAttribute('data-key-id')) === keyId && Number(await total.getAttribute('data-requests')) >= 1;
      },
      { forMs: 10_000, everyMs: 400, what: 'a request of the key in the usage chart' },
    );
    const bars = page.getByTestId('usage-bar');
    check((await bars.count()) >= 1, 'no bar in the chart');
    check(Number(await bars.first().getAttribute('data-requests')) >= 1, 'an empty bar');
    const summary = await page.getByRole('img', { name: 'Requests per hour over the last 7 days' }).count();
    check(summary === 1, 'the chart has no accessible name');
    await shot(page, '06-usage.png');
  });

  let oldSecret = null;
  await step('regenerate the key with a grace period: the new secret and the old one both work', async () => {
    await go(page, 'API keys', 'API keys');
    await page.getByRole('button', { name: `Regenerate ${keyName}` }).click();
    const dialog = page.getByRole('dialog', { name: `Regenerate ${keyName}?` });
    await dialog.getByLabel('The current secret keeps working for').selectOption({ label: '1 hour' });
    await dialog.getByRole('button', { name: 'Regenerate key' }).click();
    await said(page, `Key ${keyName} regenerated`);
    const shown = page.getByTestId('secret-value');
    await shown.waitFor();
    oldSecret = secret;
    secret = await shown.inputValue();
    check(secret !== oldSecret && /^phosra_test_[0-9a-f]{64}$/.test(secret), `the new secret looks wrong: ${secret}`);
    await page.getByText('The previous secret works until').waitFor();
    for (const [which, bearer] of [['new', secret], ['old', oldSecret]]) {
      const families = await api('GET', '/api/v1/developer/families', { bearer });
      check(families.status === 200, `the ${which} secret got ${families.status}: ${families.text}`);
    }
    await page.getByRole('button', { name: 'I have stored it' }).click();
  });

  await step('revoke the key, confirmed in a dialog that takes focus', async () => {
    await go(page, 'API keys', 'API keys');
    await page.getByRole('button', { name: `Revoke ${keyName}` }).click();
    const dialog = page.getByRole('dialog', { name: `Revoke ${keyName}?` });
    await dialog.waitFor();
    const focused = await page.evaluate(() => document.activeElement?.textContent);
    check(focused === 'Cancel', `focus is on ${JSON.stringify(focused)}, not on Cancel`);
    await shot(page, '07-revoke-dialog.png');
    await dialog.getByRole('button', { name: 'Revoke key' }).click();
    await said(page, `Key ${keyName} revoked`);
    await page.getByTestId('key-row').filter({ hasText: keyName }).and(page.locator('[data-status="revoked"]')).waitFor();
    check((await page.getByRole('dialog').count()) === 0, 'the dialog is still open');
    await shot(page, '08-key-revoked.png');
  });

  await step('the revoked key gets 401 on the data plane, its old secret too', async () => {
    for (const bearer of [secret, oldSecret]) {
      let last = null;
      await until(
        async () => {
          last = await api('GET', '/api/v1/developer/families', { bearer });
          return last.status === 401;
        },
        { forMs: 3_000, everyMs: 100, what: 'a 401 for the revoked key' },
      );
      check(last.json?.code === 'key_revoked', `the 401 says ${last.text}`);
    }
  });

  await step('a lapsed access token is refreshed on the next call, unnoticed', async () => {
    // The page's clock moves past the token's 15 minutes; the server's does not need to.
    const refreshed = page.waitForResponse((response) => new URL(response.url()).pathname === '/api/v1/auth/refresh');
    await page.clock.setSystemTime(Date.now() + 20 * 60 * 1000);
    await go(page, 'Members', 'Members');
    const response = await refreshed;
    check(response.status() === 200, `the refresh answered ${response.status()}`);
    await page.getByTestId('member-row').first().waitFor();
  });

  await step('members: the owner is listed, and an invitation is sent', async () => {
    const me = page.getByTestId('member-row').filter({ hasText: email });
    await me.waitFor();
    check((await me.getByRole('combobox').inputValue()) === 'owner', 'the signed-up user is not the owner');
    const invitee = `invitee-${unique}@example.com`;
    await page.getByRole('region', { name: 'Invite someone' }).getByLabel('Email').fill(invitee);
    await page.getByLabel('Role', { exact: true }).selectOption('admin');
    await page.getByRole('button', { name: 'Send invitation' }).click();
    await said(page, `Invitation sent to ${invitee}`);
    const invitation = page.getByTestId('invitation-row').filter({ hasText: invitee });
    await invitation.waitFor();
    check((await invitation.getAttribute('data-status')) === 'pending', 'the invitation is not pending');
    check((await invitation.textContent()).includes('admin'), 'the invitation has the wrong role');
    await shot(page, '09-members.png');
  });

  await step('my invitations: none to this address', async () => {
    await go(page, 'My invitations', 'My invitations');
    await page.getByText('No pending invitations.').waitFor();
    await shot(page, '10-my-invitations.png');
  });

  await step('MCP tokens: one created (shown once) and listed', async () => {
    await go(page, 'MCP tokens', 'MCP tokens');
    await page.getByLabel('Name', { exact: true }).fill('console-agent');
    await page.getByRole('button', { name: 'Create token' }).click();
    const shown = page.getByTestId('secret-value');
    await shown.waitFor();
    const token = await shown.inputValue();
    check(/^phosra_mcp_[0-9a-f]{64}$/.test(token), `the MCP token looks wrong: ${token}`);
    const row = page.getByTestId('mcp-token-row').filter({ hasText: 'console-agent' });
    await row.waitFor();
    check((await row.textContent()).includes(token.slice(0, 16)), 'the row shows no prefix');
    await shot(page, '11-mcp-tokens.png');
    await page.getByRole('button', { name: 'I have stored it' }).click();
  });

  await step('advisors: one registered, then consulted', async () => {
    await go(page, 'Advisors', 'Advisors');
    await page.getByText('No advisors yet.').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Console advisor');
    await page.getByLabel('Description (optional)').fill('Answers questions about families.');
    await page.getByRole('button', { name: 'Register advisor' }).click();
    await said(page, 'Advisor Console advisor registered');
    await page.getByTestId('advisor-row').filter({ hasText: 'Console advisor' }).waitFor();
    await page.getByLabel('Question').fill('Is this family policy sensible?');
    await page.getByRole('button', { name: 'Ask' }).click();
    const consultation = page.getByTestId('consultation');
    await consultation.waitFor();
    check((await consultation.getAttribute('data-status')) === 'pending', 'the consultation is not pending');
    await shot(page, '12-advisors.png');
  });

  await step('audit log: filtered to revocations, it shows the key revoked', async () => {
    await go(page, 'Audit log', 'Audit log');
    await page.getByTestId('audit-row').first().waitFor();
    await page.getByLabel('Action').fill('api_key.revoked');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    const rows = page.getByTestId('audit-row');
    await until(async () => (await rows.count()) === 1 && (await rows.first().getAttribute('data-action')) === 'api_key.revoked', {
      forMs: 5_000,
      what: 'exactly one api_key.revoked event',
    });
    await shot(page, '13-audit-log.png');
  });

  // The verification link of a mail, for an account signed up outside the browser.
  const other = `linked-${unique}@example.com`;
  let link = null;
  let otherBearer = null;

  /** Whether `other`'s address is verified, as the API says to its own session. */
  async function otherVerified() {
    const me = await api('GET', '/api/v1/auth/me', { bearer: otherBearer });
    check(me.status === 200, `GET /api/v1/auth/me answered ${me.status}: ${me.text}`);
    return me.json.user.email_verified;
  }

  /** The POSTs to verify-email a page makes, in an array that grows as it makes them. */
  function verifyRequests(tab) {
    const seen = [];
    tab.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname === '/api/v1/auth/verify-email') seen.push(request);
    });
    return seen;
  }

  await step("opening a mail's verification link alone verifies nothing (a mail scanner's visit)", async () => {
    const signup = await api('POST', '/api/v1/auth/signup', { body: { email: other, password } });
    check(signup.status === 201, `signup answered ${signup.status}: ${signup.text}`);
    otherBearer = signup.json.access_token;
    // The platform runs with KEYPLANE_PUBLIC_URL, so the mail links to the console there;
    // the same path and fragment are opened on this gateway.
    const { body, token } = await verificationMail(other);
    const linked = body.split('\n').map((line) => line.trim()).find((line) => line.startsWith(`${publicUrl}/console/verify#`));
    check(linked, `the mail has no link to the console:\n${body}`);
    link = { path: linked.slice(publicUrl.length), token };
    check(link.path === `/console/verify#verify=${token}`, `the link is not the console's with the token: ${linked}`);
    // A browser of its own, sharing nothing with the user's: what a scanner runs.
    const scanner = await browser.newContext({ baseURL: gateway });
    try {
      const tab = await scanner.newPage();
      tab.setDefaultTimeout(ACTION_MS);
      watch(tab);
      currentPage = tab;
      const sent = verifyRequests(tab);
      await tab.goto(link.path);
      // Whatever the page would send by itself, it has sent by now.
      await tab.waitForTimeout(1_200);
      check(sent.length === 0, `loading the page sent ${sent.length} verify-email request(s)`);
      check((await otherVerified()) === false, 'the address was verified by opening the link');
      await onPage(tab, 'Verify your email address');
    } finally {
      currentPage = page;
      await scanner.close();
    }
  });

  await step('the link in a fresh tab offers the token, verifies it on a click only, then asks to sign in', async () => {
    const tab = await context.newPage();
    tab.setDefaultTimeout(ACTION_MS);
    watch(tab);
    currentPage = tab;
    const sent = verifyRequests(tab);
    await tab.goto(link.path);
    await onPage(tab, 'Verify your email address');
    check((await tab.getByLabel('Verification token').inputValue()) === link.token, 'the token from the link is not in the field');
    check(new URL(tab.url()).hash === '', `the token stays in the address bar: ${tab.url()}`);
    await tab.getByText('If you did not sign up for Keyplane, ignore this and close the page.').waitFor();
    // Signed out in this tab (the session lives in another page's memory): no address to name.
    const button = tab.getByRole('button', { name: 'Verify this address', exact: true });
    await button.waitFor();
    await tab.waitForTimeout(300);
    check(sent.length === 0, `the page sent ${sent.length} verify-email request(s) before the click`);
    check((await otherVerified()) === false, 'the address is verified before the click');
    await shot(tab, '14-verify-link.png');
    await button.click();
    await onPage(tab, 'Sign in');
    await said(tab, `Your address ${other} is verified`);
    check(sent.length === 1, `the click sent ${sent.length} verify-email requests, not one`);
    check(JSON.parse(sent[0].postData()).token === link.token, 'the click sent another token');
    check((await tab.getByLabel('Email').inputValue()) === other, 'the email is not filled in');
    check((await otherVerified()) === true, 'the address is not verified after the click');
    await tab.close();
    currentPage = page;
  });

  await step('no CSP violation or script error in any page', async () => assertNoPageProblems());
  log(`passed in ${Date.now() - started} ms`);
} catch (error) {
  await browser.close().catch(() => {});
  fail(error.message);
}

clearTimeout(runTimer);
await browser.close();
