// Faces: galleries and their subjects (list, create, delete), enrolling a
// face by upload, identifying the faces of an image (boxes and the top
// names), and verifying whether two images show the same person.

import { json, mediaType } from './api.js';
import { $, errorText, h, status, svg } from './dom.js';

let caps = null;

const enc = encodeURIComponent;
const msg = () => $('#faces-status');

export function onCapabilities(c) {
  caps = c;
  if (c && c.features.faces && c.principal.scopes.includes('infer')) loadGalleries();
}

export function setup() {
  $('#galleries-refresh').addEventListener('click', () => loadGalleries());
  $('#gallery-select').addEventListener('change', loadSubjects);
  $('#gallery-create').addEventListener('click', createGallery);
  $('#gallery-delete').addEventListener('click', deleteGallery);
  $('#enroll').addEventListener('click', enroll);
  $('#identify').addEventListener('click', identify);
  $('#verify').addEventListener('click', verify);
}

const gallery = () => $('#gallery-select').value;

async function loadGalleries(select) {
  try {
    const names = [];
    let token = '';
    do {
      const q = new URLSearchParams({ page_size: '100' });
      if (token) q.set('page_token', token);
      const page = await json('/v1/galleries?' + q);
      names.push(...page.galleries.map((g) => g.name));
      token = page.next_page_token || '';
    } while (token);
    const keep = select || gallery();
    $('#gallery-select').replaceChildren(...names.map((n) => h('option', { value: n, text: n })));
    if (names.includes(keep)) $('#gallery-select').value = keep;
    await loadSubjects();
  } catch (err) {
    status(msg(), `Cannot list galleries: ${errorText(err)}`, 'error');
  }
}

async function loadSubjects() {
  const list = $('#subjects');
  list.replaceChildren();
  const g = gallery();
  if (!g) return;
  try {
    const page = await json(`/v1/galleries/${enc(g)}/subjects?page_size=1000`);
    const canWrite = caps && caps.principal.scopes.includes('galleries:write');
    for (const s of page.subjects) {
      list.append(h('li', { 'data-subject': s.subject }, `${s.subject} (${s.faces} face${s.faces === 1 ? '' : 's'}) `,
        h('button', {
          type: 'button', text: 'Delete', 'aria-label': `Delete subject ${s.subject}`, disabled: !canWrite,
          title: canWrite ? undefined : 'Needs the galleries:write scope',
          onclick: () => act(json(`/v1/galleries/${enc(g)}/subjects/${enc(s.subject)}`, { method: 'DELETE' }), `Deleted ${s.subject}.`, loadSubjects),
        })));
    }
    if (!page.subjects.length) list.append(h('li', { text: 'No subjects enrolled yet.' }));
  } catch (err) {
    status(msg(), `Cannot list subjects: ${errorText(err)}`, 'error');
  }
}

async function act(promise, done, then) {
  try {
    await promise;
    status(msg(), done, 'ok');
    if (then) await then();
  } catch (err) {
    status(msg(), errorText(err), 'error');
  }
}

function createGallery() {
  const name = $('#gallery-name').value.trim();
  act(json(`/v1/galleries/${enc(name)}`, { method: 'PUT' }), `Gallery ${name} is ready.`, () => loadGalleries(name));
}

function deleteGallery() {
  const g = gallery();
  if (g) act(json(`/v1/galleries/${enc(g)}`, { method: 'DELETE' }), `Deleted gallery ${g}.`, () => loadGalleries());
}

function enroll() {
  const g = gallery();
  const subject = $('#enroll-subject').value.trim();
  const file = $('#enroll-file').files[0];
  if (!g || !subject || !file) {
    status(msg(), 'Choose a gallery, name the subject and choose an image.', 'error');
    return;
  }
  act(json(`/v1/galleries/${enc(g)}/subjects/${enc(subject)}/faces`, { method: 'POST', body: file, type: mediaType(file) }),
    `Enrolled a face of ${subject} in ${g}.`, loadSubjects);
}

async function identify() {
  const g = gallery();
  const file = $('#identify-file').files[0];
  if (!g || !file) {
    status(msg(), 'Choose a gallery and an image.', 'error');
    return;
  }
  try {
    const topk = Math.max(1, Number($('#identify-topk').value) || 1);
    const res = await json(`/v1/galleries/${enc(g)}/identify?top_k=${topk}`, { method: 'POST', body: file, type: mediaType(file) });
    await drawFaces(file, res.faces);
    status(msg(), `${res.faces.length} face(s) found.`, 'ok');
  } catch (err) {
    status(msg(), `Identify failed: ${errorText(err)}`, 'error');
  }
}

async function drawFaces(file, faces) {
  const img = $('#identify-img');
  const url = URL.createObjectURL(file);
  await new Promise((resolve) => {
    img.onload = resolve;
    img.onerror = resolve;
    img.src = url;
  });
  $('#identify-page').hidden = false;
  const s = $('#identify-boxes');
  s.setAttribute('viewBox', `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  s.replaceChildren();
  const items = faces.map((f, i) => {
    const b = f.box;
    const best = f.matches[0];
    s.append(svg('rect', { class: best ? 'face known' : 'face', x: b.x, y: b.y, width: b.width, height: b.height, 'stroke-width': Math.max(2, img.naturalWidth / 250) }));
    const label = svg('text', { x: b.x, y: Math.max(12, b.y - 6), class: 'face-label', 'font-size': Math.max(12, img.naturalWidth / 40) });
    label.textContent = `${i + 1}. ${best ? best.subject : '?'}`;
    s.append(label);
    const names = f.matches.length ? f.matches.map((m) => `${m.subject} (${m.similarity.toFixed(3)})`).join(', ') : 'no match';
    return h('li', { 'data-face': i, text: `Face ${i + 1}: ${names}` });
  });
  $('#identify-result').replaceChildren(...items);
}

async function verify() {
  const a = $('#verify-a').files[0];
  const b = $('#verify-b').files[0];
  if (!a || !b) {
    status(msg(), 'Choose two images.', 'error');
    return;
  }
  const form = new FormData();
  form.append('a', a, a.name);
  form.append('b', b, b.name);
  try {
    const res = await json('/v1/faces/verify', { method: 'POST', body: form });
    status(msg(), `${res.match ? 'Same person' : 'Different people'}: similarity ${res.similarity.toFixed(3)} (threshold ${res.threshold}).`, 'ok');
  } catch (err) {
    status(msg(), `Verify failed: ${errorText(err)}`, 'error');
  }
}
