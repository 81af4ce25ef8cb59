// Advisors: services an org's admins register, which its members consult. An advisor
// answers with a request signed by one of its declared Ed25519 keys; the console shows
// the answer once it is there.

import { call } from '../api.js';
import { field, h, replace, row, select, table, uid, when } from '../dom.js';
import { acting, announce, formError, submitting } from '../messages.js';

export async function renderAdvisors(view, ctx) {
  const org = ctx.org;
  const listHeading = h('h2', { id: uid('advisors'), tabindex: '-1' }, 'Advisors');
  const listSlot = h('div', {}, h('p', { class: 'muted' }, 'Loading advisors…'));
  const consultSlot = h('div');
  let advisors = [];

  async function load() {
    ({ data: advisors } = await call('GET', '/api/v1/advisors', { query: { org_id: org.id, limit: 100 } }));
    const rows = advisors.map((advisor) =>
      row(
        [
          h('strong', {}, advisor.name),
          advisor.description || h('span', { class: 'muted' }, '—'),
          advisor.endpoint_url ? h('code', {}, advisor.endpoint_url) : h('span', { class: 'muted' }, 'none'),
          advisor.status,
          when(advisor.created_at),
        ],
        { 'data-testid': 'advisor-row' },
      ),
    );
    replace(listSlot, table(`Advisors of ${org.name}`, ['Name', 'Description', 'Endpoint', 'Status', 'Registered'], rows, 'No advisors yet.'));
    replace(consultSlot, advisors.length ? consultForm(advisors) : h('p', { class: 'muted' }, 'Register an advisor to consult it.'));
  }

  const headingId = uid('register');
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: '200', autocomplete: 'off' });
  const description = h('textarea', { name: 'description', rows: '2' });
  const endpoint = h('input', { type: 'url', name: 'endpoint_url', autocomplete: 'off', placeholder: 'https://' });
  const error = formError();
  const form = h(
    'form',
    {},
    field('Name', name),
    field('Description (optional)', description),
    field('Endpoint URL (optional)', endpoint, 'Where consultations are delivered, signed by Keyplane.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Register advisor')),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, error, async () => {
      const advisor = await call('POST', '/api/v1/advisors/register', {
        body: { org_id: org.id, name: name.value.trim(), description: description.value.trim(), endpoint_url: endpoint.value.trim() },
      });
      form.reset();
      announce(`Advisor ${advisor.name} registered.`);
      await load();
    });
  });

  view.append(
    h(
      'div',
      { class: 'page-header' },
      h('h1', { tabindex: '-1' }, 'Advisors'),
      h('p', { class: 'muted' }, `Advisors of ${org.name}. Members consult them; an advisor answers with a request signed by one of its declared keys.`),
    ),
    h('section', { class: 'card', 'aria-labelledby': listHeading.id }, listHeading, listSlot),
    h('section', { class: 'card', 'aria-labelledby': headingId }, h('h2', { id: headingId }, 'Register an advisor'), form),
    h('section', { class: 'card', 'aria-label': 'Consult an advisor' }, h('h2', {}, 'Consult an advisor'), consultSlot),
  );
  await load();
}

function consultForm(advisors) {
  const advisor = select({ name: 'advisor' }, advisors.map((a) => [a.id, a.name]), advisors[0].id);
  const question = h('textarea', { name: 'question', required: true, rows: '3' });
  const error = formError();
  const result = h('div');
  const form = h(
    'form',
    {},
    field('Advisor', advisor),
    field('Question', question),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Ask')),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, error, async () => {
      const consultation = await call('POST', '/api/v1/advisors/consult', { body: { advisor_id: advisor.value, question: question.value.trim() } });
      question.value = '';
      showConsultation(result, consultation);
      announce('Question sent. The answer appears here once the advisor has answered.');
    });
  });
  return h('div', {}, form, result);
}

function showConsultation(slot, consultation) {
  const check = h('button', { type: 'button', class: 'secondary small' }, 'Check for an answer');
  check.addEventListener('click', () =>
    acting(check, async () => {
      const latest = await call('GET', `/api/v1/advisors/consultations/${encodeURIComponent(consultation.id)}`);
      showConsultation(slot, latest);
      announce(latest.response ? 'The advisor has answered.' : 'No answer yet.', 'info');
    }),
  );
  replace(
    slot,
    h(
      'div',
      { class: 'card', 'data-testid': 'consultation', 'data-status': consultation.status },
      h('p', {}, h('strong', {}, 'Question: '), consultation.question),
      h('p', {}, h('strong', {}, 'Status: '), consultation.status, ' · asked ', when(consultation.created_at)),
      consultation.response
        ? h('p', {}, h('strong', {}, 'Answer: '), consultation.response.answer, h('span', { class: 'muted' }, ` (signed by key ${consultation.response.key_id})`))
        : check,
    ),
  );
}
