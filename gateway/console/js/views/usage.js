// The Usage page: requests per hour over the last 7 days, for the org or one key, with
// the daily totals as a table (the chart's text equivalent).

import { call } from '../api.js';
import { field, h, replace, row, select, table, uid } from '../dom.js';
import { usageChart } from '../chart.js';
import { announce, formError, submitting } from '../messages.js';

const HOUR_MS = 60 * 60 * 1000;
const SLOTS = 7 * 24;

/** RFC 3339 without milliseconds. */
function rfc3339(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The window: the last 168 whole hours, the current one included. */
function lastSevenDays() {
  const to = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS + HOUR_MS);
  return { from: new Date(to.getTime() - SLOTS * HOUR_MS), to };
}

const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'short', day: 'numeric' });
const hourFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export async function renderUsage(view, ctx) {
  const org = ctx.org;
  const orgPath = `/api/v1/developers/orgs/${encodeURIComponent(org.id)}`;
  const keys = await call('GET', `${orgPath}/keys`, { query: { limit: 100 } });
  const keyChoice = select(
    { id: uid('usage-key') },
    [['', 'All requests of the org'], ...keys.map((key) => [key.id, `${key.name} (${key.prefix}…)${key.status === 'active' ? '' : `, ${key.status}`}`])],
    '',
  );
  const error = formError();
  const form = h(
    'form',
    { class: 'inline-fields', 'aria-label': 'Usage filter' },
    field('Requests of', keyChoice),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Refresh')),
  );
  const chartSlot = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading usage…'));
  const dailySlot = h('div');
  const chartHeading = uid('usage-chart');
  const dailyHeading = uid('usage-daily');

  /** Answers lag each other: only the last one asked for is drawn. */
  let latest = 0;

  async function load() {
    latest += 1;
    const mine = latest;
    const keyId = keyChoice.value;
    const { from, to } = lastSevenDays();
    const usage = await call('GET', `${orgPath}/usage`, {
      query: { from: rfc3339(from), to: rfc3339(to), key_id: keyId || undefined },
    });
    if (mine !== latest) return null;
    return draw(usage.data, from, keyId);
  }

  /** On the user's request: the chart again, and its summary said. */
  const reload = () =>
    submitting(form, error, async () => {
      const summary = await load();
      if (summary) announce(`Usage updated: ${summary}`, 'info');
    });

  function draw(hours, from, keyId) {
    const requests = hours.reduce((sum, hour) => sum + hour.requests, 0);
    const errors = hours.reduce((sum, hour) => sum + hour.errors, 0);
    const busiest = hours.reduce((best, hour) => (!best || hour.requests > best.requests ? hour : best), null);
    const summary =
      `${requests} ${requests === 1 ? 'request' : 'requests'}, ${errors} ${errors === 1 ? 'error' : 'errors'} in the last 7 days` +
      (busiest && busiest.requests > 0 ? `; busiest hour ${hourFormat.format(new Date(busiest.hour))} with ${busiest.requests}.` : '.');
    chartSlot.removeAttribute('aria-busy');
    replace(
      chartSlot,
      h(
        'figure',
        {},
        usageChart(hours, from, SLOTS, summary),
        h(
          'ul',
          { class: 'legend', 'aria-hidden': 'true' },
          h('li', {}, h('span', { class: 'ok-swatch' }), 'requests'),
          h('li', {}, h('span', { class: 'error-swatch' }), 'errors (4xx and 5xx)'),
        ),
        h(
          'figcaption',
          {},
          h('strong', { 'data-testid': 'usage-total', 'data-requests': requests, 'data-key-id': keyId }, `${requests} ${requests === 1 ? 'request' : 'requests'}`),
          `, ${errors} ${errors === 1 ? 'error' : 'errors'} in the last 7 days`,
          busiest && busiest.requests > 0 ? `; busiest hour ${hourFormat.format(new Date(busiest.hour))} with ${busiest.requests}.` : '.',
        ),
      ),
    );
    replace(dailySlot, dailyTable(hours));
    return summary;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    reload();
  });
  keyChoice.addEventListener('change', reload);

  view.append(
    h(
      'div',
      { class: 'page-header' },
      h('h1', { tabindex: '-1' }, 'Usage'),
      h('p', { class: 'muted' }, `Requests the gateways counted for ${org.name}, per hour. New requests appear within a few seconds: refresh to see them.`),
    ),
    h('section', { class: 'card', 'aria-labelledby': chartHeading }, h('h2', { id: chartHeading }, 'Requests per hour, last 7 days'), form, error, chartSlot),
    h('section', { class: 'card', 'aria-labelledby': dailyHeading }, h('h2', { id: dailyHeading }, 'Daily totals'), dailySlot),
  );
  await load();
}

/** Requests and errors per local day, newest first: what the chart shows, as text. */
function dailyTable(hours) {
  const days = new Map();
  for (const hour of hours) {
    const at = new Date(hour.hour);
    const key = `${at.getFullYear()}-${at.getMonth()}-${at.getDate()}`;
    const day = days.get(key) ?? { date: at, requests: 0, errors: 0 };
    day.requests += hour.requests;
    day.errors += hour.errors;
    days.set(key, day);
  }
  const rows = [...days.values()]
    .sort((a, b) => b.date - a.date)
    .map((day) => row([dayFormat.format(day.date), day.requests.toLocaleString(), day.errors.toLocaleString()]));
  return table('Requests per day', ['Day', 'Requests', 'Errors'], rows, 'No requests in the last 7 days.');
}
