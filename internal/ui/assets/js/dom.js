// Small DOM helpers. Text always goes in as text (textContent), never as
// HTML: server answers and user input cannot inject markup.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// h builds an element: h('button', {type: 'button', onclick: f}, 'Save').
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) el.append(c);
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// status writes a message into a live region; kind is '', 'error' or 'ok'.
export function status(el, message, kind = '') {
  el.textContent = message;
  el.dataset.kind = kind;
}

export function errorText(err) {
  return err && err.message ? err.message : String(err);
}

// confColour maps a confidence in [0,1] to a stroke colour from red (0)
// through amber to green (1), dark enough to read on white.
export function confColour(c) {
  const hue = Math.round(Math.max(0, Math.min(1, c)) * 120);
  return `hsl(${hue}, 85%, 32%)`;
}

export const pct = (c) => (c * 100).toFixed(1) + '%';

export function points(quad) {
  return quad.map((p) => p.join(',')).join(' ');
}
