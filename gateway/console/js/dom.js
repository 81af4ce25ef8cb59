// Building the page. Text always goes in as text nodes and attributes through
// setAttribute, never parsed as HTML: nothing the API answers can become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * An element: `h('button', {class: 'danger', onclick}, 'Revoke')`. A tag written
 * `svg:rect` is made in the SVG namespace. Attributes that are null, undefined or false
 * are left out; `true` sets an empty attribute (so `checked` and `selected` are also the
 * defaults a form reset returns to); `on…` functions become listeners.
 */
export function h(tag, attributes = {}, ...children) {
  const element = tag.startsWith('svg:')
    ? document.createElementNS(SVG_NS, tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'value' && 'value' in element) {
      element.value = value;
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces what `element` holds. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let uniqueCounter = 0;
/** An id unique in the page, for label `for`, aria-labelledby and the like. */
export function uid(prefix) {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

/** A labelled field: the label is tied to the control, and a hint to aria-describedby. */
export function field(label, control, hint) {
  const id = control.id || uid('field');
  control.id = id;
  const parts = [h('label', { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('p', { class: 'hint', id: hintId }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

/** A `<select>` of `[value, label]` pairs. */
export function select(attributes, options, chosen) {
  return h(
    'select',
    attributes,
    options.map(([value, label]) => h('option', { value, selected: value === chosen }, label)),
  );
}

/** A table with a caption; `rows` are arrays of cells (strings or nodes). */
export function table(caption, headers, rows, empty) {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, headers.map((header) => h('th', { scope: 'col' }, header)))),
      h('tbody', {}, rows.map((row) => h('tr', row.attributes ?? {}, row.cells.map((cell) => cell)))),
    ),
  );
}

/** A row for `table`: cells, and attributes for its `<tr>` (a test id, say). */
export function row(cells, attributes) {
  return { cells: cells.map((cell) => (cell instanceof Node && cell.tagName === 'TD' ? cell : h('td', {}, cell))), attributes };
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A time for people: local, medium date and short time, in a `<time>` element. */
export function when(iso, otherwise = 'never') {
  if (!iso) return h('span', { class: 'muted' }, otherwise);
  const date = new Date(iso);
  return h('time', { datetime: iso, title: date.toISOString() }, dateTime.format(date));
}

/** Chips for a list of short strings (scopes, resource ids). */
export function chips(values) {
  return values.map((value) => h('span', { class: 'chip' }, value));
}
