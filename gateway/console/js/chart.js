// The hourly usage chart: an SVG built here, one bar per hour (errors in the bar's lower
// part), a dashed line at each local midnight, and a scale with round numbers.

import { h, uid } from './dom.js';

const HOUR_MS = 60 * 60 * 1000;
const WIDTH = 840;
const HEIGHT = 250;
const MARGIN = { top: 14, right: 10, bottom: 34, left: 48 };

/** The smallest of 1, 2, 5 × 10ⁿ at or above `value` (at least 1). */
function roundUp(value) {
  if (value <= 1) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

const dayLabel = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric' });
const hourLabel = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/**
 * The chart of `hours` (`[{hour, requests, errors}]`, the API's rows) over `slots` hours
 * from `from` (a Date on the hour). `summary` becomes the chart's accessible description.
 */
export function usageChart(hours, from, slots, summary) {
  const counts = new Map(hours.map((row) => [new Date(row.hour).getTime(), row]));
  const peak = roundUp(Math.max(0, ...hours.map((row) => row.requests)));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = plotWidth / slots;
  const x = (index) => MARGIN.left + index * slot;
  const y = (value) => MARGIN.top + plotHeight - (value / peak) * plotHeight;

  const titleId = uid('chart-title');
  const descId = uid('chart-desc');
  const parts = [h('svg:title', { id: titleId }, 'Requests per hour over the last 7 days'), h('svg:desc', { id: descId }, summary)];

  for (const value of [0, peak / 2, peak].filter(Number.isInteger)) {
    parts.push(
      h('svg:line', { class: 'grid', x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value) }),
      h('svg:text', { class: 'axis-label', x: MARGIN.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, formatCount(value)),
    );
  }

  // A dashed line at each local midnight, and the day's name under the middle of its part.
  const start = from.getTime();
  let dayStart = 0;
  for (let index = 0; index <= slots; index += 1) {
    const at = new Date(start + index * HOUR_MS);
    const isMidnight = at.getHours() === 0 && index > 0 && index < slots;
    if (isMidnight || index === slots) {
      if (isMidnight) parts.push(h('svg:line', { class: 'day', x1: x(index), x2: x(index), y1: MARGIN.top, y2: MARGIN.top + plotHeight }));
      if (index - dayStart >= 6) {
        const middle = new Date(start + ((dayStart + index) / 2) * HOUR_MS);
        parts.push(
          h('svg:text', { class: 'axis-label', x: (x(dayStart) + x(index)) / 2, y: HEIGHT - 12, 'text-anchor': 'middle' }, dayLabel.format(middle)),
        );
      }
      dayStart = index;
    }
  }

  const barWidth = Math.max(1, slot * 0.8);
  for (let index = 0; index < slots; index += 1) {
    const at = start + index * HOUR_MS;
    const counted = counts.get(at);
    if (!counted || counted.requests === 0) continue;
    const top = y(counted.requests);
    const errors = Math.min(counted.errors, counted.requests);
    const label = `${hourLabel.format(new Date(at))}: ${counted.requests} ${counted.requests === 1 ? 'request' : 'requests'}, ${errors} ${errors === 1 ? 'error' : 'errors'}`;
    const group = h(
      'svg:g',
      { 'data-testid': 'usage-bar', 'data-hour': new Date(at).toISOString(), 'data-requests': counted.requests, 'data-errors': errors },
      h('svg:title', {}, label),
      h('svg:rect', { class: 'bar', x: x(index) + (slot - barWidth) / 2, y: top, width: barWidth, height: y(0) - top }),
    );
    if (errors > 0) {
      const errorTop = y(errors);
      group.append(h('svg:rect', { class: 'bar-error', x: x(index) + (slot - barWidth) / 2, y: errorTop, width: barWidth, height: y(0) - errorTop }));
    }
    parts.push(group);
  }

  if (hours.every((row) => row.requests === 0)) {
    parts.push(h('svg:text', { class: 'axis-label', x: WIDTH / 2, y: MARGIN.top + plotHeight / 2, 'text-anchor': 'middle' }, 'No requests in these 7 days'));
  }

  return h(
    'svg:svg',
    { class: 'chart', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-labelledby': titleId, 'aria-describedby': descId, 'data-testid': 'usage-chart' },
    parts,
  );
}

function formatCount(value) {
  return value.toLocaleString();
}
