// The console's only way to the server: fetch with the user's credential.
// The credential lives in sessionStorage (this tab, until it closes) and
// travels as "Authorization: Bearer"; no cookie is ever set.

const KEY = 'visionserve.credential';

export function credential() {
  return sessionStorage.getItem(KEY) || '';
}

export function setCredential(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

// ApiError is a refused request: the problem document's fields.
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.type = problem.type || '';
    this.problem = problem;
  }
}

function headers(extra) {
  const h = new Headers(extra || {});
  const c = credential();
  if (c) h.set('Authorization', 'Bearer ' + c);
  return h;
}

// request sends one request and returns the Response of a success; a
// failure throws ApiError with the server's problem document.
export async function request(path, { method = 'GET', body, type, accept, signal } = {}) {
  const h = headers();
  if (type) h.set('Content-Type', type);
  if (accept) h.set('Accept', accept);
  const resp = await fetch(path, { method, body, headers: h, signal, credentials: 'omit', cache: 'no-store' });
  if (!resp.ok) {
    let problem = {};
    try {
      problem = await resp.json();
    } catch {
      problem = { title: resp.statusText };
    }
    throw new ApiError(resp.status, problem);
  }
  return resp;
}

export async function json(path, opts) {
  const resp = await request(path, opts);
  return resp.status === 204 ? null : resp.json();
}

// events reads a Server-Sent Events stream with the credential (the
// browser's EventSource cannot send one): onOpen once the server answered,
// then onEvent with each event's parsed data until signal aborts or the
// stream ends.
export async function events(path, onOpen, onEvent, signal) {
  const resp = await request(path, { accept: 'text/event-stream', signal });
  onOpen();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data) onEvent(JSON.parse(data));
    }
  }
}

// saveBlob offers blob to the user as a file called name.
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// download fetches path with the credential and saves it as name.
export async function download(path, name) {
  const resp = await request(path);
  saveBlob(await resp.blob(), name);
  return resp;
}

// mediaType is what to declare for a file: its type when the server knows
// it, else octet-stream (the server reads the format from the bytes).
const imageTypes = ['image/png', 'image/jpeg', 'image/tiff', 'image/bmp', 'image/gif', 'image/webp', 'application/pdf'];
export function mediaType(file) {
  return imageTypes.includes(file.type) ? file.type : 'application/octet-stream';
}

export async function isPDF(file) {
  const head = new Uint8Array(await file.slice(0, 5).arrayBuffer());
  return String.fromCharCode(...head) === '%PDF-';
}
