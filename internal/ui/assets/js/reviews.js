// Reviews: the corrections stored on the server, their line images, and
// their export as the calibration data `visionserve calibrate` reads.

import { download, json, request } from './api.js';
import { $, errorText, h, pct, status } from './dom.js';

let caps = null;
let next = '';
const thumbs = [];

export function onCapabilities(c) {
  caps = c;
  command();
  if (c && c.features.reviews && c.principal.scopes.includes('infer')) load(true);
}

export function setup() {
  $('#export-tar').addEventListener('click', () => exportAs('tar'));
  $('#export-zip').addEventListener('click', () => exportAs('zip'));
  $('#reviews-refresh').addEventListener('click', () => load(true));
  $('#reviews-more').addEventListener('click', () => load(false));
  $('#export-model').addEventListener('input', command);
  $('#tab-reviews').addEventListener('click', () => {
    if (!$('#reviews-export').disabled) load(true);
  });
}

function exportPath(format) {
  const q = new URLSearchParams({ format });
  const model = $('#export-model').value.trim();
  if (model) q.set('model', model);
  return '/v1/reviews/export?' + q;
}

function command() {
  $('#calibrate-cmd').textContent =
    `VISIONSERVE_API_KEY=… visionserve calibrate --model ${$('#export-model').value.trim() || 'ocr-eng'} --reviews '${location.origin}${exportPath('tar')}'`;
}

async function exportAs(format) {
  const st = $('#reviews-status');
  try {
    await download(exportPath(format), `reviews.${format}`);
    status(st, `Downloaded reviews.${format}.`, 'ok');
  } catch (err) {
    status(st, `Export failed: ${errorText(err)}`, 'error');
  }
}

async function load(fresh) {
  const st = $('#reviews-status');
  const body = $('#review-list tbody');
  if (fresh) {
    next = '';
    body.replaceChildren();
    for (const u of thumbs.splice(0)) URL.revokeObjectURL(u);
  }
  try {
    const q = new URLSearchParams({ page_size: '50' });
    if (next) q.set('page_token', next);
    const page = await json('/v1/reviews?' + q);
    next = page.next_page_token || '';
    $('#reviews-more').hidden = !next;
    for (const r of page.reviews) body.append(row(r));
    status(st, `${body.children.length} review(s) shown.`);
  } catch (err) {
    status(st, `Cannot list reviews: ${errorText(err)}`, 'error');
  }
}

function row(r) {
  const img = h('img', { alt: `Line image of review ${r.id}`, class: 'thumb' });
  request(r.links.image).then((resp) => resp.blob()).then((b) => {
    const u = URL.createObjectURL(b);
    thumbs.push(u);
    img.src = u;
  }, () => {});
  const canDelete = caps && caps.principal.scopes.includes('reviews:write');
  const tr = h('tr', { 'data-review': r.id },
    h('td', {}, img),
    h('td', { text: r.corrected }),
    h('td', { text: r.text }),
    h('td', { text: `${pct(r.confidence)} ${r.review || ''}` }),
    h('td', { text: `${new Date(r.created).toLocaleString()} by ${r.author}` }),
    h('td', {}, h('button', {
      type: 'button', text: 'Delete', 'aria-label': `Delete review ${r.id}`, disabled: !canDelete,
      title: canDelete ? undefined : 'Needs the reviews:write scope',
      onclick: () => json(r.links.self, { method: 'DELETE' }).then(() => tr.remove(), (e) => status($('#reviews-status'), errorText(e), 'error')),
    })));
  return tr;
}
