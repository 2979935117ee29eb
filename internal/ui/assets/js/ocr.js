// OCR: a dropped, pasted or chosen page is read by POST /v1/ocr (a PDF
// as a job); the page is shown with every line's quadrilateral coloured by
// confidence, the lines are listed least confident first, and the review
// queue steps through the lines that need a person, storing each
// correction with POST /v1/reviews.

import { isPDF, json, mediaType, request } from './api.js';
import { $, confColour, errorText, h, pct, points, status, svg } from './dom.js';
import { runJob } from './jobs.js';

let caps = null;
// doc is the document on screen: the file, whether it is a PDF, the
// result's pages ({width, height, lines, model}) and each page's image URL.
let doc = null;
let current = 0;
// The review queue: lines of the current page, the position in it.
let queue = [];
let qpos = 0;
let saved = 0;

export function onCapabilities(c) {
  caps = c;
}

export function setup() {
  $('#ocr-file').addEventListener('change', (e) => {
    if (e.target.files[0]) read(e.target.files[0]);
  });
  const drop = $('#drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer.files[0];
    if (f) read(f);
  });
  document.addEventListener('paste', (e) => {
    if ($('#ocr').hidden) return;
    const f = [...e.clipboardData.files][0];
    if (f) {
      e.preventDefault();
      read(f);
    }
  });
  $('#ocr-page').addEventListener('change', (e) => showPage(Number(e.target.value)));
  $('#queue-start').addEventListener('click', startQueue);
  $('#queue-save').addEventListener('click', saveCorrection);
  $('#queue-skip').addEventListener('click', () => step(1));
  $('#queue-prev').addEventListener('click', () => step(-1));
  $('#queue-stop').addEventListener('click', stopQueue);
  $('#queue-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      saveCorrection();
    }
  });
}

// read sends file to the server and shows the result.
export async function read(file) {
  if ($('#ocr-input').disabled) return;
  const st = $('#ocr-status');
  status(st, `Reading ${file.name || 'the pasted image'}…`);
  const started = performance.now();
  try {
    const pdf = await isPDF(file);
    const pages = pdf ? await readAsJob(file, st) : await readImage(file);
    if (doc) for (const url of doc.images.values()) URL.revokeObjectURL(url);
    doc = { file, pdf, pages, images: new Map(), base64: null };
    const sel = $('#ocr-page');
    sel.replaceChildren(...pages.map((p, i) => h('option', { value: i, text: `${i + 1} of ${pages.length}` })));
    $('#page-nav').hidden = pages.length < 2;
    $('#ocr-result').hidden = false;
    await showPage(0);
    const lines = pages.reduce((n, p) => n + p.lines.length, 0);
    status(st, `Read ${pages.length} page(s), ${lines} line(s) in ${Math.round(performance.now() - started)} ms.`, 'ok');
  } catch (err) {
    status(st, `Could not read it: ${errorText(err)}`, 'error');
  }
}

async function readImage(file) {
  const model = $('#ocr-model').value.trim();
  const q = model ? '?model=' + encodeURIComponent(model) : '';
  const res = await json('/v1/ocr' + q, { method: 'POST', body: file, type: mediaType(file) });
  return res.pages.map((p) => ({ ...p, model: res.model }));
}

// readAsJob reads a PDF through the jobs API (POST /v1/ocr takes images
// only); its pages' images come from the server's preview, rendered as
// the job read them.
async function readAsJob(file, st) {
  if (!caps || !caps.features.jobs) throw new Error('PDFs are read as jobs, and this server has no jobs (jobs.dir)');
  const result = await runJob([file], $('#ocr-model').value.trim(), (s) =>
    status(st, `PDF job ${s.state}: ${s.progress.pages_done} of ${s.progress.pages_total} page(s) read…`));
  return result.pages.filter((p) => !p.error);
}

// pageImage returns the URL of page i's image, as the server decoded it:
// the file itself when the browser shows it at the result's size, else
// the server's rendering (TIFF, PNM, a later page, EXIF orientation the
// browser applied differently, a PDF page), or null when the server
// cannot render it.
async function pageImage(i) {
  if (doc.images.has(i)) return doc.images.get(i);
  const page = doc.pages[i];
  let url = null;
  if (i === 0 && doc.pages.length === 1 && !doc.pdf) {
    try {
      const bm = await createImageBitmap(doc.file);
      if (bm.width === page.width && bm.height === page.height) url = URL.createObjectURL(doc.file);
      bm.close();
    } catch {
      // not an image this browser decodes: ask the server
    }
  }
  if (!url) {
    try {
      const resp = await request(`/v1/ocr/preview?page=${sourcePage(page, i)}`, { method: 'POST', body: doc.file, type: fileType() });
      url = URL.createObjectURL(await resp.blob());
    } catch (err) {
      status($('#ocr-status'), `The page's image could not be shown: ${errorText(err)}`, 'error');
      return null;
    }
  }
  doc.images.set(i, url);
  return url;
}

async function showPage(i) {
  current = i;
  stopQueue();
  const page = doc.pages[i];
  $('#ocr-page').value = String(i);
  const img = $('#page-img');
  const box = $('#page');
  const url = await pageImage(i);
  if (url) {
    img.hidden = false;
    await new Promise((resolve) => {
      img.onload = resolve;
      img.onerror = resolve;
      img.src = url;
    });
    box.style.aspectRatio = '';
  } else {
    img.hidden = true;
    img.removeAttribute('src');
    box.style.aspectRatio = `${page.width} / ${page.height}`;
  }
  box.classList.toggle('blank', !url);
  drawQuads(page);
  listLines(page);
  const m = page.model ? `${page.model.name} version ${page.model.version}` : 'the model';
  $('#ocr-summary').textContent = `Page ${i + 1}: ${page.width}×${page.height} pixels, ${page.lines.length} lines, confidence ${pct(page.confidence || 0)}, read by ${m}.` +
    (url ? '' : ' (Shown without its image.)');
  $('#line-detail').replaceChildren();
}

function drawQuads(page) {
  const s = $('#quads');
  s.setAttribute('viewBox', `0 0 ${page.width} ${page.height}`);
  s.replaceChildren();
  const tip = $('#tooltip');
  page.lines.forEach((line, li) => {
    const poly = svg('polygon', {
      class: `line tier-${line.review}`, points: points(line.box), stroke: confColour(line.confidence),
      'stroke-width': Math.max(1.5, page.width / 400), 'data-line': li,
    });
    poly.addEventListener('mousemove', (e) => {
      tip.replaceChildren(
        h('strong', { text: `${pct(line.confidence)} · ${line.review}` }),
        h('ul', {}, line.words.map((w) => h('li', { text: `${w.text}  ${pct(w.confidence)}` }))),
      );
      tip.hidden = false;
      const r = tip.parentElement.getBoundingClientRect();
      tip.style.left = `${e.clientX - r.left + 12}px`;
      tip.style.top = `${e.clientY - r.top + 12}px`;
    });
    poly.addEventListener('mouseleave', () => {
      tip.hidden = true;
    });
    poly.addEventListener('click', () => selectLine(li));
    s.append(poly);
  });
}

function byConfidence(lines) {
  return lines.map((line, index) => ({ line, index })).sort((a, b) => a.line.confidence - b.line.confidence);
}

function listLines(page) {
  const rows = byConfidence(page.lines).map(({ line, index }) =>
    h('tr', { 'data-line': index },
      h('td', {}, h('span', { class: 'swatch', 'data-conf': line.confidence }), pct(line.confidence)),
      h('td', { class: `tier tier-${line.review}`, text: line.review }),
      h('td', {}, h('button', { type: 'button', class: 'linkish', onclick: () => selectLine(index), text: line.text || '(no text)' }))));
  $('#lines tbody').replaceChildren(...rows);
  for (const sw of document.querySelectorAll('#lines .swatch')) sw.style.background = confColour(Number(sw.dataset.conf));
}

// selectLine highlights a line and lists its words' confidences (the
// keyboard's way to what hovering shows).
function selectLine(li) {
  const line = doc.pages[current].lines[li];
  for (const p of document.querySelectorAll('#quads polygon')) p.classList.toggle('selected', Number(p.dataset.line) === li);
  $('#line-detail').replaceChildren(
    h('h4', { text: `Line ${li + 1}: ${pct(line.confidence)}, ${line.review}` }),
    h('ul', { class: 'words' }, line.words.map((w) => h('li', { text: `${w.text} — ${pct(w.confidence)}` }))),
  );
}

function startQueue() {
  const st = $('#queue-status');
  if (!doc) return;
  if ($('#page-img').hidden) {
    status(st, "This page's image could not be shown, so its lines cannot be cut for review.", 'error');
    return;
  }
  const all = $('#queue-accepted').checked;
  queue = byConfidence(doc.pages[current].lines).filter(({ line }) => all || line.review !== 'accept');
  qpos = 0;
  saved = 0;
  if (!queue.length) {
    status(st, 'No line of this page needs review. Tick “Also step through accepted lines” to confirm or correct the others.');
    return;
  }
  $('#queue').hidden = false;
  status(st, '');
  showQueued();
}

function stopQueue() {
  $('#queue').hidden = true;
  queue = [];
}

function step(d) {
  qpos += d;
  if (qpos < 0) qpos = 0;
  if (qpos >= queue.length) {
    status($('#queue-status'), `Review queue done: ${saved} line(s) saved.`, 'ok');
    stopQueue();
    $('#queue-start').focus();
    return;
  }
  showQueued();
}

// cropRect is the line's rectangle widened by a quarter of its height (at
// least 4 pixels), the same region the server cuts for the review.
function cropRect(box, w, h) {
  const xs = box.map((p) => p[0]);
  const ys = box.map((p) => p[1]);
  const m = Math.max(4, (Math.max(...ys) - Math.min(...ys)) / 4);
  const x0 = Math.max(0, Math.floor(Math.min(...xs) - m));
  const y0 = Math.max(0, Math.floor(Math.min(...ys) - m));
  const x1 = Math.min(w, Math.ceil(Math.max(...xs) + m));
  const y1 = Math.min(h, Math.ceil(Math.max(...ys) + m));
  return [x0, y0, Math.max(1, x1 - x0), Math.max(1, y1 - y0)];
}

function showQueued() {
  const { line, index } = queue[qpos];
  const page = doc.pages[current];
  $('#queue-position').textContent = `Line ${qpos + 1} of ${queue.length} in the queue (line ${index + 1} of the page)`;
  const [x, y, w, hh] = cropRect(line.box, page.width, page.height);
  const c = $('#queue-crop');
  c.width = w;
  c.height = hh;
  c.getContext('2d').drawImage($('#page-img'), x, y, w, hh, 0, 0, w, hh);
  c.setAttribute('aria-label', `Image of line ${index + 1}`);
  $('#queue-text').textContent = line.text;
  $('#queue-meta').textContent = `(confidence ${pct(line.confidence)}, tier ${line.review})`;
  const input = $('#queue-input');
  input.value = line.text;
  input.focus();
  input.select();
  selectLine(index);
}

// fileType is the media type to declare for the document on screen.
function fileType() {
  return doc.pdf ? 'application/pdf' : mediaType(doc.file);
}

// sourcePage is the index of page (shown as page i) within its file: a
// job's page says where it came from.
function sourcePage(page, i) {
  return page.source ? page.source.page : page.index ?? i;
}

async function fileBase64() {
  if (!doc.base64) {
    doc.base64 = await new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
      r.onerror = () => reject(r.error);
      r.readAsDataURL(doc.file);
    });
  }
  return doc.base64;
}

async function saveCorrection() {
  const { line } = queue[qpos];
  const page = doc.pages[current];
  const corrected = $('#queue-input').value.trim();
  const st = $('#queue-status');
  const btn = $('#queue-save');
  btn.disabled = true;
  try {
    const body = {
      image: await fileBase64(),
      content_type: fileType() === 'application/octet-stream' ? '' : fileType(),
      corrected, text: line.text, confidence: line.confidence, review: line.review,
      model: page.model || { name: '', version: '' },
      source: { name: doc.file.name || 'pasted', page: sourcePage(page, current), box: line.box },
    };
    const r = await json('/v1/reviews', { method: 'POST', body: JSON.stringify(body), type: 'application/json' });
    saved++;
    status(st, `${corrected === line.text ? 'Confirmed' : 'Corrected'} and saved as review ${r.id}.`, 'ok');
    step(1);
  } catch (err) {
    status(st, `Not saved: ${errorText(err)}`, 'error');
  } finally {
    btn.disabled = false;
  }
}
