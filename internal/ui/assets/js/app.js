// The console's entry point: the credential, the tabs, and what the
// credential may do. GET /v1/whoami says which scopes the credential holds
// and which features this listener serves; every fieldset that needs one
// it lacks is disabled with the reason written inside it.

import { ApiError, credential, json, setCredential } from './api.js';
import { $, $$, h } from './dom.js';
import * as ocr from './ocr.js';
import * as jobs from './jobs.js';
import * as reviews from './reviews.js';
import * as faces from './faces.js';
import * as models from './models.js';

const sections = [ocr, jobs, reviews, faces, models];

// caps is the last whoami answer, null when the server refused the
// credential (or none was given on a server that needs one).
let caps = null;

const featureReasons = {
  ocr: (c) => (c.listener === 'admin' ? 'OCR is served on the public listener, not on this admin one.' : 'OCR is not available on this server.'),
  jobs: (c) => (c.listener === 'admin' ? 'Jobs are served on the public listener.' : 'Jobs are not enabled on this server (jobs.dir is not set; see docs/jobs.md).'),
  reviews: (c) => (c.listener === 'admin' ? 'Reviews are served on the public listener.' : 'This server keeps no reviews (reviews.path or reviews.store: postgres is not set; see docs/console.md).'),
  faces: (c) => (c.listener === 'admin' ? 'Faces are served on the public listener.' : 'Face recognition is not enabled on this server (see docs/faces.md).'),
  models: () => 'Model administration is served on the admin listener only: open /ui/ on the admin address (server.admin_addr) with a models:admin credential.',
};

// reasonFor says why el's part of the console is off for caps, or ''.
export function reasonFor(el, c) {
  if (!c) return 'Enter an API key or JWT above: this server needs a credential.';
  const feature = el.dataset.feature;
  if (feature && !c.features[feature]) return featureReasons[feature](c);
  const scope = el.dataset.scope;
  if (scope && !c.principal.scopes.includes(scope)) {
    const held = c.principal.scopes.length ? c.principal.scopes.join(', ') : 'no scope';
    return `Needs the ${scope} scope; this credential (${c.principal.id}) has ${held}.`;
  }
  return '';
}

function gate() {
  for (const el of $$('[data-feature], [data-scope]')) {
    const reason = reasonFor(el, caps);
    let note = el.querySelector(':scope > .reason');
    if (!note) {
      note = h('p', { class: 'reason', id: el.id + '-reason' });
      const legend = el.querySelector(':scope > legend');
      if (legend) legend.after(note);
      else el.prepend(note);
    }
    note.textContent = reason;
    note.hidden = !reason;
    el.disabled = Boolean(reason);
    if (reason) el.setAttribute('aria-describedby', note.id);
    else el.removeAttribute('aria-describedby');
  }
}

async function refresh() {
  const who = $('#who');
  try {
    caps = await json('/v1/whoami');
    const p = caps.principal;
    const tenant = p.tenant ? `, tenant ${p.tenant}` : '';
    who.textContent = p.method !== 'anonymous'
      ? `Signed in as ${p.id}${tenant}; scopes: ${p.scopes.join(', ') || 'none'}.`
      : `Authentication is off on this server: requests without a credential run as ${p.id} (scopes: ${p.scopes.join(', ')}).`;
    $('#listener').textContent = caps.listener === 'admin' ? '(admin listener)' : '';
  } catch (err) {
    caps = null;
    who.textContent = err instanceof ApiError && err.status === 401
      ? (credential() ? `The server refused this credential: ${err.message}` : 'This server needs a credential: enter an API key or JWT.')
      : `Cannot reach the server: ${err.message}`;
  }
  gate();
  for (const s of sections) s.onCapabilities(caps);
}

function selectTab(tab, focus) {
  for (const t of $$('[role=tab]')) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $('#' + t.getAttribute('aria-controls')).hidden = !on;
  }
  if (focus) tab.focus();
  history.replaceState(null, '', '#' + tab.getAttribute('aria-controls'));
}

function setupTabs() {
  const tabs = $$('[role=tab]');
  for (const t of tabs) {
    t.addEventListener('click', () => selectTab(t, false));
    // Arrow keys move between tabs, as the ARIA tabs pattern has it.
    t.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(t);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      selectTab(tabs[(next + tabs.length) % tabs.length], true);
    });
  }
  const initial = tabs.find((t) => '#' + t.getAttribute('aria-controls') === location.hash);
  if (initial) selectTab(initial, false);
}

function setupSignin() {
  $('#signin').addEventListener('submit', (e) => {
    e.preventDefault();
    setCredential($('#credential').value.trim());
    $('#credential').value = '';
    refresh();
  });
  $('#signout').addEventListener('click', () => {
    setCredential('');
    refresh();
  });
}

function start() {
  setupTabs();
  setupSignin();
  for (const s of sections) s.setup();
  refresh();
}

start();
