// Jobs: submit files (images and PDFs) as one asynchronous job, follow
// its progress, and download its result in every output format the server
// has (GET /v1/whoami lists the renderer registry's formats).

import { json, mediaType, request, saveBlob } from './api.js';
import { $, errorText, h, status } from './dom.js';

let caps = null;
const finished = new Set(['succeeded', 'failed', 'canceled']);

export function onCapabilities(c) {
  caps = c;
}

export function setup() {
  $('#job-submit').addEventListener('click', submit);
}

// submitJob posts files as one job and returns its status.
async function submitJob(files, model) {
  const q = model ? '?model=' + encodeURIComponent(model) : '';
  if (files.length === 1) {
    return json('/v1/jobs' + q, { method: 'POST', body: files[0], type: mediaType(files[0]) });
  }
  const form = new FormData();
  for (const f of files) form.append('file', f, f.name);
  return json('/v1/jobs' + q, { method: 'POST', body: form });
}

// follow polls a job until it finishes, calling onStatus with each status.
async function follow(st, onStatus) {
  while (!finished.has(st.state)) {
    onStatus(st);
    await new Promise((r) => setTimeout(r, 500));
    st = await json(st.links.self);
  }
  onStatus(st);
  return st;
}

// runJob submits files, waits for the job and returns its JSON result.
export async function runJob(files, model, onStatus) {
  const st = await follow(await submitJob(files, model), onStatus);
  if (st.state !== 'succeeded') throw new Error(`the job ${st.state}`);
  return json(st.links.result);
}

async function submit() {
  const files = [...$('#job-files').files];
  const msg = $('#jobs-status');
  if (!files.length) {
    status(msg, 'Choose at least one file.', 'error');
    return;
  }
  try {
    const st = await submitJob(files, $('#job-model').value.trim());
    status(msg, `Submitted job ${st.id}.`, 'ok');
    track(st, files.map((f) => f.name).join(', '));
  } catch (err) {
    status(msg, `Not submitted: ${errorText(err)}`, 'error');
  }
}

// track adds a job to the list and keeps its progress live.
function track(st, label) {
  const bar = h('progress', { max: 1, value: 0, 'aria-label': `Progress of job ${st.id}` });
  const state = h('span', { class: 'state' });
  const actions = h('div', { class: 'buttons' });
  const note = h('p', { class: 'status', role: 'status' });
  const li = h('li', { 'data-job': st.id }, h('p', {}, h('code', { text: st.id }), ` ${label} `, state), bar, actions, note);
  $('#job-list').prepend(li);
  const cancel = h('button', { type: 'button', text: 'Cancel job', onclick: () => json(`/v1/jobs/${st.id}/cancel`, { method: 'POST' }).catch((e) => status(note, errorText(e), 'error')) });
  actions.append(cancel);
  follow(st, (s) => {
    const p = s.progress;
    bar.max = Math.max(1, p.pages_total);
    bar.value = p.pages_done + p.pages_failed;
    state.textContent = `${s.state}: ${p.pages_done} of ${p.pages_total} page(s) read` + (p.pages_failed ? `, ${p.pages_failed} failed` : '');
    li.dataset.state = s.state;
  }).then((s) => {
    cancel.remove();
    if (s.state !== 'canceled') actions.append(...downloads(s, note));
    actions.append(h('button', {
      type: 'button', text: 'Delete job',
      onclick: () => json(`/v1/jobs/${s.id}`, { method: 'DELETE' }).then(() => li.remove(), (e) => status(note, errorText(e), 'error')),
    }));
  }, (err) => status(note, errorText(err), 'error'));
}

// downloads are one button per output format. A server whose job results
// do not render a format yet answers JSON (or refuses): the note says so.
function downloads(st, note) {
  const formats = caps && caps.formats.length ? caps.formats : [{ name: 'json', ext: 'json', content_type: 'application/json' }];
  return formats.map((f) => h('button', {
    type: 'button', text: `Download ${f.name}`,
    onclick: async () => {
      try {
        const resp = await request(`${st.links.result}?format=${encodeURIComponent(f.name)}`);
        const got = (resp.headers.get('Content-Type') || '').split(';')[0];
        const blob = await resp.blob();
        if (f.name !== 'json' && got === 'application/json') {
          saveBlob(blob, `${st.id}.json`);
          status(note, `This server's job results are not rendered as ${f.name} yet: saved the JSON result instead.`, 'error');
          return;
        }
        saveBlob(blob, `${st.id}.${f.ext}`);
        status(note, `Downloaded ${st.id}.${f.ext}.`, 'ok');
      } catch (err) {
        status(note, `No ${f.name} result: ${errorText(err)}`, 'error');
      }
    },
  }));
}
