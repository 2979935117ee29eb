// Models (admin listener only): every model's versions and their states,
// the traffic weights (editable), loading and unloading versions, and the
// repository's lifecycle events as they happen (Server-Sent Events).

import { events, json } from './api.js';
import { $, errorText, h, status } from './dom.js';

let stream = null; // AbortController of the event stream

export function setup() {
  $('#models-refresh').addEventListener('click', load);
}

export function onCapabilities(c) {
  if (stream) stream.abort();
  stream = null;
  if (!c || !c.features.models || !c.principal.scopes.includes('models:admin')) return;
  load();
  follow();
}

async function load() {
  try {
    const list = await json('/v1/models');
    $('#model-list').replaceChildren(...list.models.map((m) => model(m, list.source)));
    status($('#models-status'), `${list.models.length} model(s), ${list.source === 'repository' ? 'served from the model repository' : 'fixed by the configuration'}; default ${list.default_model}.`);
  } catch (err) {
    status($('#models-status'), `Cannot list models: ${errorText(err)}`, 'error');
  }
}

function model(m, source) {
  const editable = source === 'repository';
  const rows = m.versions.map((v) => {
    const id = `weight-${m.name}-${v.version}`;
    const share = m.traffic.shares[v.version];
    const weight = (m.traffic.weights || {})[v.version];
    return h('tr', { 'data-version': v.version },
      h('th', { scope: 'row', text: v.version }),
      h('td', { class: `state state-${v.state}`, text: v.state + (v.reason ? ` (${v.reason})` : '') }),
      h('td', { text: share === undefined ? '—' : `${(share * 100).toFixed(0)}%` }),
      h('td', {},
        h('label', { for: id, class: 'visually-hidden', text: `Traffic weight of ${m.name} version ${v.version}` }),
        h('input', { id, type: 'number', min: 0, max: 1000000, step: 1, class: 'weight', 'data-version': v.version, value: weight ?? '', disabled: !editable })),
      h('td', { text: v.signer ? `${v.signer.method} ${v.signer.subject || v.signer.key_id || ''}`.trim() : '' }),
      h('td', {},
        h('button', { type: 'button', disabled: !editable, text: 'Load', 'aria-label': `Load ${m.name} version ${v.version}`, onclick: () => action(m.name, v.version, 'load') }),
        h('button', { type: 'button', disabled: !editable, text: 'Unload', 'aria-label': `Unload ${m.name} version ${v.version}`, onclick: () => action(m.name, v.version, 'unload') })));
  });
  const apply = h('button', { type: 'button', disabled: !editable, text: `Apply traffic weights of ${m.name}`, onclick: () => setWeights(m.name, table) });
  const table = h('table', { class: 'versions', 'data-model': m.name },
    h('caption', { text: `${m.name} (${m.kind || 'model'}), traffic ${m.traffic.mode}` }),
    h('thead', {}, h('tr', {}, ['Version', 'State', 'Share', 'Weight', 'Signed by', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, rows));
  return h('div', { class: 'model' }, table,
    h('p', { class: 'hint', text: 'Weights split unpinned requests among ready versions; leave every weight empty to serve the newest version.' }),
    apply);
}

async function setWeights(name, table) {
  const weights = {};
  for (const input of table.querySelectorAll('input.weight')) {
    if (input.value !== '') weights[input.dataset.version] = Number(input.value);
  }
  try {
    await json(`/v1/models/${encodeURIComponent(name)}/traffic`, { method: 'PUT', type: 'application/json', body: JSON.stringify({ weights }) });
    status($('#models-status'), `Traffic weights of ${name} set.`, 'ok');
    await load();
  } catch (err) {
    status($('#models-status'), `Weights not set: ${errorText(err)}`, 'error');
  }
}

async function action(name, version, verb) {
  try {
    await json(`/v1/models/${encodeURIComponent(name)}/versions/${version}/${verb}`, { method: 'POST' });
    status($('#models-status'), `${name} version ${version}: ${verb} requested.`, 'ok');
    await load();
  } catch (err) {
    status($('#models-status'), `${verb} failed: ${errorText(err)}`, 'error');
  }
}

function describe(e) {
  if (e.type === 'traffic') {
    const shares = Object.entries(e.traffic || {}).map(([v, s]) => `v${v} ${(s * 100).toFixed(0)}%`).join(', ');
    return `${e.model}: traffic ${shares || 'none'}`;
  }
  return `${e.model} version ${e.version}: ${e.type}${e.reason ? ` (${e.reason})` : ''}${e.duration_ms ? ` in ${Math.round(e.duration_ms)} ms` : ''}`;
}

// follow keeps the event stream open, reconnecting after a pause when
// the server ends it (shutdown, or a client too slow to keep up), from the
// last event it saw so that none is missed.
async function follow() {
  const ctl = new AbortController();
  stream = ctl;
  const list = $('#events');
  let last = 0;
  while (!ctl.signal.aborted) {
    try {
      const path = last ? `/v1/models/events?since=${last}` : '/v1/models/events';
      await events(path, () => { list.dataset.connected = 'true'; }, (e) => {
        last = e.seq;
        list.prepend(h('li', { 'data-type': e.type, 'data-model': e.model, text: `${new Date(e.time).toLocaleTimeString()} ${describe(e)}` }));
        while (list.children.length > 200) list.lastChild.remove();
        if (e.type === 'traffic' || e.type === 'ready' || e.type === 'unloaded' || e.type === 'failed') load();
      }, ctl.signal);
    } catch (err) {
      if (ctl.signal.aborted) return;
      status($('#models-status'), `Event stream interrupted: ${errorText(err)}; reconnecting.`, 'error');
    }
    delete list.dataset.connected;
    await new Promise((r) => setTimeout(r, 2000));
  }
}
