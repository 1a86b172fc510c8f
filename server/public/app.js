// pixdex web page: search by photo, similar-by-id, classify, labels, library stats, indexing,
// the review of label suggestions, and duplicates; the Browse view is in browse.js.
// Plain ES modules, no build step; talks to the JSON API under /api (see /openapi.json).
import { initBrowse } from './browse.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'pixdex.token';
const POLL_MS = 500;

const el = {
  tabs: [$('tab-search'), $('tab-browse'), $('tab-library'), $('tab-suggestions'), $('tab-duplicates')],
  alert: $('alert'), alertText: $('alert-text'), alertClose: $('alert-close'), alertToken: $('alert-token'),
  tokenBox: $('token-box'), tokenForm: $('token-form'), token: $('token'),
  drop: $('drop'), file: $('file'), camera: $('camera'), k: $('k'), labelFilter: $('label-filter'),
  query: $('query'), queryImg: $('query-img'), queryCaption: $('query-caption'), back: $('back'),
  queryOutline: $('query-outline'), queryFound: $('query-found'),
  classify: $('classify'), classifyMethod: $('classify-method'), classifyResult: $('classify-result'), classifyError: $('classify-error'),
  predLabel: $('pred-label'), predConf: $('pred-conf'), votes: $('votes'),
  status: $('status'), grid: $('grid'), cardTemplate: $('card-template'), labelOptions: $('label-options'),
  facts: { images: $('fact-images'), labels: $('fact-labels'), backbone: $('fact-backbone'), space: $('fact-space'), backend: $('fact-backend'), watch: $('fact-watch') },
  labelsBody: $('labels-body'),
  indexForm: $('index-form'), indexPath: $('index-path'), indexLabelFolder: $('index-label-folder'),
  indexStart: $('index-start'), indexCancel: $('index-cancel'),
  job: $('index-job'), jobLabel: $('index-progress-label'), progress: $('index-progress'), jobText: $('index-text'), jobErrors: $('index-errors'),
  propagateForm: $('propagate-form'), minConfidence: $('min-confidence'), propagate: $('propagate'), acceptAll: $('accept-all'),
  suggestionsStatus: $('suggestions-status'), suggestions: $('suggestions'), suggestionTemplate: $('suggestion-template'),
  dupesForm: $('dupes-form'), dupesKind: $('dupes-kind'), dupesThreshold: $('dupes-threshold'),
  dupesStatus: $('dupes-status'), dupes: $('dupes'), dupeGroupTemplate: $('dupe-group-template'), dupeCardTemplate: $('dupe-card-template'),
};

/** What the grid currently shows: the uploaded photo, or an indexed image by id. */
let current = null;
/** The last uploaded photo, to go back to after browsing by id. */
let lastUpload = null;
/** Increases with every query, so a slow answer never overwrites a newer one. */
let querySeq = 0;
/** The same for the classify vote alone (the method can change without a new search). */
let classifySeq = 0;
/** True while suggestions are being computed or decided, so two runs never interleave. */
let reviewing = false;
let pollTimer = 0;
let runningJobId = null;
/**
 * Where verified hits were found in the uploaded photo (issue 14): the hits with an outline by
 * card id, the one shown by default (the first verified hit, or the one whose badge was pressed),
 * and the cards under the pointer and holding the focus, whose outline is shown meanwhile.
 */
const outlines = { byId: new Map(), pinned: null, hover: null, focus: null };

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the API; resolves to the JSON body (with `withStatus`, plus the HTTP `status`), or throws
 * ApiError with the server's message.
 */
async function api(method, url, { body, json, auth = false, withStatus = false } = {}) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (auth && token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(url, { method, body, headers });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `Cannot reach the pixdex server (${err.message}). Is it still running?`);
  }
  const data = (res.headers.get('content-type') || '').includes('application/json') ? await res.json().catch(() => null) : null;
  if (!res.ok) {
    const e = data && data.error;
    throw new ApiError(res.status, e ? e.code : 'HTTP_' + res.status, e ? e.message : `The server answered ${res.status} ${res.statusText}`);
  }
  return withStatus ? { ...data, status: res.status } : data;
}

function upload(url, file) {
  const form = new FormData();
  form.append('image', file, file.name || 'pasted-image');
  return api('POST', url, { body: form });
}

// ---------------------------------------------------------------- messages

/** A sentence for an error: the server's message, or what went wrong in the page. */
function errorText(err) {
  const text = err instanceof ApiError ? err.message : `Something went wrong: ${err && err.message ? err.message : err}`;
  return text.charAt(0).toUpperCase() + text.slice(1); // server messages may start with a file name or "query image"
}

/**
 * Shows an error in the alert. A 401 says where the token goes and offers a button to open the
 * Token box: it never opens by itself (it would cover the end of the message).
 */
function showError(err) {
  let text = errorText(err);
  const unauthorized = err instanceof ApiError && err.status === 401;
  if (unauthorized) text += '. Enter the server token under “Token” (top right), then try again.';
  el.alertToken.hidden = !unauthorized;
  el.alertText.textContent = text;
  el.alert.dataset.code = err instanceof ApiError ? err.code : 'ERROR';
  el.alert.hidden = false;
  // On a phone the page is often scrolled far below the message: bring it into view.
  const box = el.alert.getBoundingClientRect();
  if (box.top < 0 || box.bottom > innerHeight) el.alert.scrollIntoView({ block: 'nearest' });
}

function clearError() {
  el.alert.hidden = true;
  el.alertText.textContent = '';
}

function setStatus(text) {
  el.status.textContent = text;
}

el.alertClose.addEventListener('click', clearError);
el.alertToken.addEventListener('click', () => {
  el.tokenBox.open = true;
  el.token.focus();
});

// ---------------------------------------------------------------- token

el.token.value = sessionStorage.getItem(TOKEN_KEY) || '';
el.tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const t = el.token.value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
  el.tokenBox.open = false;
  setStatus(t ? 'Token saved for this tab.' : 'Token cleared.');
});

// ---------------------------------------------------------------- tabs

function selectTab(tab, focus = false) {
  for (const t of el.tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
  if (focus) tab.focus();
  history.replaceState(null, '', tab.id === 'tab-search' ? '#' : `#${tab.id.slice(4)}`);
  if (tab.id === 'tab-library') {
    loadLibrary();
    resumeJob();
  }
  if (tab.id === 'tab-browse') browse.show();
  if (tab.id === 'tab-suggestions') loadSuggestions();
  if (tab.id === 'tab-duplicates') loadDuplicates();
}

el.tabs.forEach((tab, i) => {
  tab.addEventListener('click', () => selectTab(tab));
  tab.addEventListener('keydown', (e) => {
    const n = el.tabs.length;
    const to = { ArrowRight: (i + 1) % n, ArrowLeft: (i - 1 + n) % n, Home: 0, End: n - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    selectTab(el.tabs[to], true);
  });
});

// ---------------------------------------------------------------- labels and stats

async function loadLabels() {
  const { labels } = await api('GET', '/api/labels');
  const chosen = el.labelFilter.value;
  el.labelFilter.replaceChildren(new Option('All labels', ''));
  for (const { label, count } of labels) el.labelFilter.add(new Option(`${label} (${count})`, label));
  el.labelFilter.value = labels.some((l) => l.label === chosen) ? chosen : '';
  el.labelOptions.replaceChildren(...labels.map(({ label }) => new Option(label)));
  browse.setLabels(labels);
  el.labelsBody.replaceChildren(...labels.map(({ label, count }) => {
    const tr = document.createElement('tr');
    const name = document.createElement('td');
    name.textContent = label;
    const n = document.createElement('td');
    n.className = 'num';
    n.textContent = count.toLocaleString();
    tr.append(name, n);
    return tr;
  }));
  if (labels.length === 0) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = 2;
    td.className = 'muted';
    td.textContent = 'No labels yet.';
    tr.append(td);
    el.labelsBody.replaceChildren(tr);
  }
}

async function loadLibrary() {
  try {
    const [stats] = await Promise.all([api('GET', '/api/stats'), loadLabels()]);
    el.facts.images.textContent = stats.images.toLocaleString();
    el.facts.labels.textContent = Object.keys(stats.labels).length.toLocaleString();
    el.facts.backbone.textContent = `${stats.backbone} (${stats.dims}-d, ${stats.descriptor} descriptor)`;
    el.facts.space.textContent = spaceText(stats.spaceInfo ?? stats.space);
    el.facts.backend.textContent = stats.backend;
    el.facts.backend.title = stats.backendReason || '';
    el.facts.watch.textContent = watchText(stats.watch);
  } catch (err) {
    showError(err);
  }
}

/** Folders watched by `serve --watch` / `index --watch`: state, pending changes, the last pass. */
function watchText(watchers) {
  if (!watchers || watchers.length === 0) return 'no folder';
  return watchers.map((w) => {
    const roots = w.roots.map((r) => (r.state === 'missing' ? `${r.path} (missing: images kept)` : r.path)).join(', ');
    const last = w.lastPass ? `; last pass ${new Date(w.lastPass.finishedAt).toLocaleTimeString()}: +${w.lastPass.added} −${w.lastPass.removed}${w.lastPass.failed ? ` (${w.lastPass.failed} failed)` : ''}` : '';
    return `${roots}: ${w.state}${w.pending ? `, ${w.pending} changes pending` : ''}${last}`;
  }).join(' · ');
}

/** The embedding space: a name, or `{kind, dims, trainedAt...}` once an autoencoder is trained. */
function spaceText(space) {
  if (!space) return '–';
  if (typeof space === 'string') return space;
  return space.kind === 'autoencoder' && space.dims ? `autoencoder (${space.dims}-d)` : space.kind;
}

// ---------------------------------------------------------------- search

function kValue() {
  const k = Number(el.k.value);
  return Number.isInteger(k) && k >= 1 ? Math.min(k, 1000) : 12;
}

function queryString(extra = {}) {
  const q = new URLSearchParams({ k: String(kValue()), ...extra });
  if (el.labelFilter.value) q.set('label', el.labelFilter.value);
  return q.toString();
}

/** Uploads a photo: similar images in the grid, and the classify vote beside it. */
async function searchFile(file) {
  clearError();
  const seq = ++querySeq;
  el.grid.setAttribute('aria-busy', 'true');
  setStatus(`Searching for images similar to ${file.name || 'the pasted image'}…`);
  const votePending = classifyUpload(file);
  const voteSeq = classifySeq;
  const [search, vote] = await Promise.allSettled([upload(`/api/search?${queryString()}`, file), votePending]);
  if (seq !== querySeq) return;
  el.grid.setAttribute('aria-busy', 'false');
  if (search.status === 'rejected') {
    clearResults();
    showError(search.reason);
    return;
  }
  if (lastUpload) URL.revokeObjectURL(lastUpload.url);
  lastUpload = { file, url: URL.createObjectURL(file) };
  current = { kind: 'file', file };
  showQuery(lastUpload.url, `Your photo: ${file.name || 'pasted image'}`, `Your photo ${file.name || ''}`.trim());
  el.queryImg.onerror = () => showPreview(lastUpload, seq);
  el.back.hidden = true;
  if (voteSeq !== classifySeq) reclassify(); // the method changed while this search ran
  else if (vote.status === 'fulfilled') renderVote(vote.value);
  else renderVote(null, vote.reason);
  const found = search.value.results.filter((r) => r.verified).length;
  const headline = `${search.value.results.length} similar images to your photo${found ? ` (${found} of the same object)` : ''} · ${Math.round(search.value.tookMs)} ms`;
  renderResults(search.value.results, headline, { outlines: true });
}

/** Similar-by-id: the images most like an indexed one. */
async function searchById(id) {
  clearError();
  const seq = ++querySeq;
  el.grid.setAttribute('aria-busy', 'true');
  setStatus(`Searching for images similar to image ${id}…`);
  try {
    const [rec, r] = await Promise.all([api('GET', `/api/images/${id}`), api('GET', `/api/images/${id}/similar?${queryString()}`)]);
    if (seq !== querySeq) return;
    current = { kind: 'id', id };
    showQuery(rec.thumbnailUrl, `Image ${id}: ${shortName(rec.path)}${rec.label ? ` · ${rec.label}` : ''}`, shortName(rec.path));
    el.back.hidden = !lastUpload;
    renderVote(null);
    renderResults(r.results, `${r.results.length} images similar to ${shortName(rec.path)} · ${Math.round(r.tookMs)} ms`);
    el.grid.querySelector('.thumb')?.focus({ preventScroll: true });
  } catch (err) {
    if (seq === querySeq) {
      clearResults();
      showError(err);
    }
  } finally {
    if (seq === querySeq) el.grid.setAttribute('aria-busy', 'false');
  }
}

/**
 * A failed query: the error replaces what was shown (results, query photo, vote), so nothing
 * stale sits under the message as if it answered the new photo. The last upload stays for "Back".
 */
function clearResults() {
  current = null;
  resetOutlines([]);
  el.grid.replaceChildren();
  delete el.status.dataset.last;
  setStatus('No results: see the message above. Drop another photo to search again.');
  el.query.hidden = true;
  el.queryImg.removeAttribute('src');
  el.back.hidden = !lastUpload;
  renderVote(null);
  drawOutline();
}

function rerun() {
  if (!current) return;
  if (current.kind === 'file') searchFile(current.file);
  else searchById(current.id);
}

/**
 * A photo this browser cannot show (a HEIC outside Safari): the server's JPEG preview of it
 * instead, once; the outlines are drawn in relative coordinates, so they fit it too.
 */
async function showPreview(shown, seq) {
  el.queryImg.onerror = null;
  const form = new FormData();
  form.append('image', shown.file, shown.file.name || 'pasted-image');
  const res = await fetch('/api/preview', { method: 'POST', body: form }).catch(() => null);
  if (!res || !res.ok || seq !== querySeq || shown !== lastUpload) return;
  URL.revokeObjectURL(shown.url);
  shown.url = URL.createObjectURL(await res.blob());
  el.queryImg.src = shown.url;
}

function showQuery(src, caption, alt) {
  el.queryImg.onerror = null;
  el.queryImg.src = src;
  el.queryImg.alt = alt;
  el.queryCaption.textContent = caption;
  el.query.hidden = false;
}

/** The classify vote for an uploaded photo, by the chosen method. */
function classifyUpload(file) {
  classifySeq++;
  const q = new URLSearchParams({ k: String(kValue()), method: el.classifyMethod.value });
  return upload(`/api/classify?${q}`, file);
}

/** Shows a vote, or why there is none (e.g. no trained head: 409 NO_CLASSIFIER); hides the panel for neither. */
function renderVote(vote, error) {
  el.classify.hidden = !vote && !error;
  el.classify.dataset.method = vote ? vote.method : el.classifyMethod.value;
  el.classifyResult.hidden = !vote;
  el.classifyError.hidden = !error;
  el.classifyError.textContent = error ? errorText(error) : '';
  el.classifyError.dataset.code = error instanceof ApiError ? error.code : '';
  if (!vote) return;
  el.predLabel.textContent = vote.label ?? 'No label';
  el.predConf.textContent = vote.label ? `${Math.round(vote.confidence * 100)}% confidence` : `(${vote.reason ?? 'no labelled neighbours'})`;
  const total = Object.values(vote.votes).reduce((a, b) => a + b, 0) || 1;
  el.votes.replaceChildren(...Object.entries(vote.votes).map(([label, w]) => {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = label;
    const pct = document.createElement('span');
    pct.className = 'muted';
    pct.textContent = `${Math.round((w / total) * 100)}%`;
    li.title = `vote weight ${w.toFixed(3)}`;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.style.width = `${(w / total) * 100}%`;
    bar.append(fill);
    li.append(name, pct, bar);
    return li;
  }));
}

/** The last two parts of a path ("ants/123.jpg"): enough to recognise a file. */
function shortName(p) {
  return p.split(/[\\/]/).slice(-2).join('/');
}

/**
 * Shows results in the grid. `outlines`: they answer the uploaded photo shown beside them, so the
 * outlines of verified hits can be drawn on it (not for similar-by-id: another image is shown).
 */
function renderResults(results, headline, { outlines: drawable = false } = {}) {
  el.status.dataset.last = headline;
  setStatus(results.length ? headline : 'No similar images: the library is empty, or nothing has this label.');
  // A re-render must not take the keyboard focus away: it stays on the same image when it is still shown.
  const focused = el.grid.contains(document.activeElement) ? document.activeElement.closest('.card')?.dataset.id : undefined;
  resetOutlines(drawable ? results : []);
  el.grid.replaceChildren(...results.map(card));
  if (focused !== undefined) el.grid.querySelector(`.card[data-id="${focused}"] .thumb`)?.focus({ preventScroll: true });
  drawOutline();
}

// ---------------------------------------------------------------- where the object was found

/** Four finite [x, y] corners: an outline that can be drawn. */
function isOutline(o) {
  return Array.isArray(o) && o.length === 4 && o.every((p) => Array.isArray(p) && p.length === 2 && p.every(Number.isFinite));
}

/** New results: the first verified hit with an outline is shown until another card is chosen. */
function resetOutlines(results) {
  outlines.byId = new Map(results.filter((r) => r.verified && isOutline(r.outline)).map((r) => [String(r.id), r]));
  outlines.pinned = outlines.byId.keys().next().value ?? null;
  outlines.hover = null;
  outlines.focus = null;
}

/**
 * Draws the outline of the card under the pointer, else of the focused card, else of the pinned
 * one, over the uploaded photo (fractions of its displayed size: the SVG's viewBox is the unit
 * square stretched over the image); nothing when no hit has an outline. Marks that card, and
 * says in the caption what is outlined.
 */
function drawOutline() {
  const id = [outlines.hover, outlines.focus, outlines.pinned].find((x) => x !== null && outlines.byId.has(x)) ?? null;
  const hit = id === null ? undefined : outlines.byId.get(id);
  for (const li of el.grid.children) {
    li.classList.toggle('outlined', hit !== undefined && li.dataset.id === id);
    li.querySelector('button.verify')?.setAttribute('aria-pressed', String(li.dataset.id === outlines.pinned));
  }
  const svg = el.queryOutline;
  svg.toggleAttribute('hidden', !hit);
  el.queryFound.hidden = !hit;
  if (!hit) {
    delete svg.dataset.id;
    svg.querySelectorAll('polygon').forEach((p) => p.setAttribute('points', ''));
    el.queryFound.textContent = '';
    return;
  }
  // Corners may lie a little outside the photo; a wild one is kept within reach of it.
  const clamp = (v) => Math.min(2, Math.max(-1, v));
  const points = hit.outline.map(([x, y]) => `${clamp(x).toFixed(4)},${clamp(y).toFixed(4)}`).join(' ');
  svg.querySelectorAll('polygon').forEach((p) => p.setAttribute('points', points));
  svg.dataset.id = id;
  el.queryFound.textContent = `Outlined: where ${shortName(hit.path)} was found (${matchesText(hit.inliers)})`;
}

function matchesText(n) {
  return `${Number(n).toLocaleString()} ${n === 1 ? 'match' : 'matches'}`;
}

/** Pins a card's outline (its badge was pressed), and brings the photo into view if it is not. */
function pinOutline(id) {
  outlines.pinned = id;
  drawOutline();
  const box = el.query.getBoundingClientRect();
  if (box.bottom <= 0 || box.top >= innerHeight) {
    const smooth = !matchMedia('(prefers-reduced-motion: reduce)').matches;
    el.query.scrollIntoView({ block: 'nearest', behavior: smooth ? 'smooth' : 'auto' });
  }
}

/**
 * The verification of a hit on its card: a badge for a verified one (a button that shows where
 * it was found when it has an outline), the match count in the score's tooltip for the others.
 */
function verification(li, r) {
  const thumb = li.querySelector('.thumb');
  const score = li.querySelector('.score');
  if (!r.verified) {
    if (r.inliers > 0) score.title += ` · ${matchesText(r.inliers)} of local features, too few to be the same object`;
    return;
  }
  const id = String(r.id);
  const drawable = outlines.byId.has(id);
  const badge = document.createElement(drawable ? 'button' : 'p');
  badge.className = 'verify';
  badge.id = `verify-${id}-${Math.random().toString(36).slice(2, 8)}`;
  const mark = document.createElement('span');
  mark.setAttribute('aria-hidden', 'true');
  mark.textContent = '✓';
  badge.append(mark, ` Same object · ${matchesText(r.inliers)}`);
  badge.title = `Verified: ${matchesText(r.inliers)} of local features agree on one geometric transform between your photo and this image`;
  const said = `Same object, ${matchesText(r.inliers)}: verified`;
  if (drawable) {
    badge.type = 'button';
    badge.setAttribute('aria-label', `${said}. Show where it is in your photo`);
    badge.setAttribute('aria-pressed', 'false');
    badge.addEventListener('click', () => pinOutline(id));
    const show = (key, on) => {
      outlines[key] = on ? id : outlines[key] === id ? null : outlines[key];
      drawOutline();
    };
    li.addEventListener('pointerenter', () => show('hover', true));
    li.addEventListener('pointerleave', () => show('hover', false));
    li.addEventListener('focusin', () => show('focus', true));
    li.addEventListener('focusout', (e) => { if (!li.contains(e.relatedTarget)) show('focus', false); });
  } else {
    badge.setAttribute('role', 'img');
    badge.setAttribute('aria-label', said);
  }
  thumb.setAttribute('aria-describedby', badge.id);
  li.classList.add('verified');
  li.dataset.inliers = String(r.inliers);
  thumb.after(badge);
}

function card(r) {
  const li = el.cardTemplate.content.firstElementChild.cloneNode(true);
  li.dataset.id = String(r.id);
  li.dataset.path = r.path;
  const name = shortName(r.path);
  const thumb = li.querySelector('.thumb');
  thumb.setAttribute('aria-label', `Find images similar to ${name}`);
  thumb.title = 'Find similar images';
  const img = thumb.querySelector('img');
  img.src = r.thumbnailUrl;
  thumb.addEventListener('click', () => searchById(r.id));
  const score = li.querySelector('.score');
  score.textContent = r.score.toFixed(3);
  if (r.score >= 0.999) li.classList.add('query-match');
  verification(li, r);
  li.querySelector('.name').textContent = name;
  li.querySelector('.name').title = r.path;
  setCardLabel(li, r.label, name);
  const original = li.querySelector('.open');
  original.href = `/api/images/${r.id}/original`;
  original.setAttribute('aria-label', `Open the original of ${name}`);
  if (r.takenAt) {
    const taken = li.querySelector('.taken');
    taken.replaceChildren(takenNode(r.takenAt));
    taken.hidden = false;
  }

  const edit = li.querySelector('.edit');
  const form = li.querySelector('.label-form');
  const input = form.querySelector('input');
  const inputId = `label-input-${r.id}-${Math.random().toString(36).slice(2, 8)}`;
  input.id = inputId;
  form.querySelector('label').htmlFor = inputId;
  form.querySelector('label').textContent = `Label for ${name} (empty clears it)`;
  edit.setAttribute('aria-label', `Set the label of ${name}`);
  const close = () => {
    form.hidden = true;
    edit.setAttribute('aria-expanded', 'false');
    edit.focus();
  };
  edit.addEventListener('click', () => {
    if (!form.hidden) return close();
    form.hidden = false;
    edit.setAttribute('aria-expanded', 'true');
    input.value = li.dataset.label || '';
    input.focus();
    input.select();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') close();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = input.value.trim();
    try {
      const rec = await api('PUT', `/api/images/${r.id}/label`, { json: { label: value === '' ? null : value }, auth: true });
      clearError();
      setCardLabel(li, rec.label, name);
      close();
      setStatus(rec.label ? `Labelled ${name} “${rec.label}”.` : `Cleared the label of ${name}.`);
      loadLabels().catch(showError);
    } catch (err) {
      showError(err);
    }
  });
  return li;
}

function setCardLabel(li, label, name) {
  li.dataset.label = label ?? '';
  const chip = li.querySelector('.label-chip');
  chip.textContent = label ?? 'unlabelled';
  chip.classList.toggle('none', !label);
  li.querySelector('.thumb img').alt = `${name}, ${label ? `labelled ${label}` : 'unlabelled'}`;
}

el.back.addEventListener('click', () => {
  if (lastUpload) searchFile(lastUpload.file);
});
el.k.addEventListener('change', rerun);
el.classifyMethod.addEventListener('change', reclassify);

/** Classifies the uploaded photo again, with the method now chosen. */
async function reclassify() {
  if (!current || current.kind !== 'file') return;
  const { file } = current;
  const pending = classifyUpload(file);
  const seq = classifySeq;
  el.classify.setAttribute('aria-busy', 'true');
  let vote = null;
  let error = null;
  try {
    vote = await pending;
  } catch (err) {
    error = err;
  }
  if (seq !== classifySeq) return; // a newer method change or search answers instead
  el.classify.setAttribute('aria-busy', 'false');
  if (current && current.kind === 'file' && current.file === file) renderVote(vote, error);
}
el.labelFilter.addEventListener('change', rerun);

// ---------------------------------------------------------------- drop, pick, paste

for (const input of [el.file, el.camera]) {
  input.addEventListener('change', () => {
    const f = input.files && input.files[0];
    if (f) searchFile(f);
    input.value = ''; // picking the same file again searches again
  });
}

function imageFrom(dataTransfer) {
  if (!dataTransfer) return null;
  if (dataTransfer.files && dataTransfer.files.length) return dataTransfer.files[0];
  for (const item of dataTransfer.items || []) {
    if (item.kind === 'file') return item.getAsFile();
  }
  return null;
}

let dragDepth = 0;
/** Photos dropped on the Browse view are added to the library; anywhere else, the first is searched for. */
const browsing = () => !$('view-browse').hidden;
const dropZone = () => (browsing() ? browse.dropZone : el.drop);
document.addEventListener('dragenter', (e) => {
  if (!e.dataTransfer || ![...e.dataTransfer.types].includes('Files')) return;
  dragDepth++;
  dropZone().classList.add('over');
});
document.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) dropZone().classList.remove('over');
});
document.addEventListener('dragover', (e) => e.preventDefault());
document.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  dropZone().classList.remove('over');
  if (browsing()) {
    browse.addFiles(e.dataTransfer ? e.dataTransfer.files : []);
    return;
  }
  const f = imageFrom(e.dataTransfer);
  if (!f) return;
  selectTab(el.tabs[0]);
  searchFile(f);
});
document.addEventListener('paste', (e) => {
  const f = imageFrom(e.clipboardData);
  if (!f) return; // text pasted into a field stays text
  e.preventDefault();
  selectTab(el.tabs[0]);
  searchFile(f);
});

// ---------------------------------------------------------------- indexing

el.indexForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearError();
  const folder = el.indexPath.value.trim();
  if (!folder) return;
  el.indexStart.disabled = true;
  try {
    const { jobId } = await api('POST', '/api/index', { json: { paths: [folder], labelFromFolder: el.indexLabelFolder.checked }, auth: true });
    follow(jobId);
  } catch (err) {
    el.indexStart.disabled = false;
    showError(err);
  }
});

el.indexCancel.addEventListener('click', async () => {
  if (!runningJobId) return;
  try {
    renderJob(await api('DELETE', `/api/index/${runningJobId}`, { auth: true }));
  } catch (err) {
    showError(err);
  }
});

/** Shows a job started elsewhere (another tab, before a reload), if one is running. */
async function resumeJob() {
  if (runningJobId) return;
  try {
    const { jobs } = await api('GET', '/api/index');
    if (jobs[0] && jobs[0].state === 'running') follow(jobs[0].jobId);
  } catch {
    // the library view works without it
  }
}

function follow(jobId) {
  runningJobId = jobId;
  clearTimeout(pollTimer);
  const tick = async () => {
    try {
      const job = await api('GET', `/api/index/${jobId}`);
      renderJob(job);
      if (job.state === 'running') {
        pollTimer = setTimeout(tick, POLL_MS);
        return;
      }
      loadLibrary();
    } catch (err) {
      showError(err);
    }
    runningJobId = null;
    el.indexStart.disabled = false;
    el.indexCancel.hidden = true;
  };
  tick();
}

function renderJob(job) {
  el.job.hidden = false;
  el.job.dataset.state = job.state;
  el.jobLabel.textContent = `Indexing ${job.paths.join(', ')}`;
  const running = job.state === 'running';
  el.indexStart.disabled = running;
  el.indexCancel.hidden = !running;
  el.indexCancel.disabled = job.cancelRequested;
  const s = job.summary;
  if (job.total === null) {
    el.progress.removeAttribute('value'); // indeterminate while the folder is scanned
  } else {
    el.progress.value = job.state === 'done' || job.total === 0 ? 100 : Math.floor((job.done / job.total) * 100);
  }
  el.progress.setAttribute('aria-valuetext', `${el.progress.hasAttribute('value') ? el.progress.value + '%' : 'starting'}`);
  let text;
  if (job.state === 'running') {
    text = job.total === null
      ? 'Scanning the folder and starting the model…'
      : `${job.done.toLocaleString()} of ${job.total.toLocaleString()} files · ${job.rate} images/s · about ${formatSeconds(job.etaSeconds)} left`;
    if (job.cancelRequested) text += ' · cancelling…';
  } else if (job.state === 'done') {
    text = `Done: ${s.added} added, ${s.updated} updated, ${s.skipped} skipped, ${s.failed} failed, ${s.removed} removed, in ${s.seconds} s.`;
  } else if (job.state === 'cancelled') {
    text = `Cancelled after ${job.done} of ${job.total ?? '?'} files (${s ? s.added : 0} added). What was indexed is kept.`;
  } else {
    text = `Failed: ${job.error ? job.error.message : 'unknown error'}`;
  }
  el.jobText.textContent = text;
  const errors = s ? s.errors : [];
  el.jobErrors.replaceChildren(...errors.slice(0, 10).map((x) => {
    const li = document.createElement('li');
    li.textContent = `${shortName(x.path)}: ${x.error}`;
    li.title = x.path;
    return li;
  }));
}

function formatSeconds(s) {
  if (!Number.isFinite(s) || s < 1) return 'a second';
  if (s < 90) return `${Math.round(s)} s`;
  return `${Math.round(s / 60)} min`;
}

// ---------------------------------------------------------------- label suggestions

function setSuggestionsStatus(text) {
  el.suggestionsStatus.textContent = text;
}

/** Disables the run and accept-all buttons while one operation is in flight. */
function setReviewing(on) {
  reviewing = on;
  el.propagate.disabled = on;
  el.acceptAll.disabled = on || el.suggestions.children.length === 0;
  el.suggestions.setAttribute('aria-busy', String(on));
}

async function loadSuggestions() {
  if (reviewing) return;
  try {
    const { suggestions } = await api('GET', '/api/suggestions');
    renderSuggestions(suggestions);
    setSuggestionsStatus(suggestions.length
      ? `${countText(suggestions.length, 'suggestion')} waiting for review.`
      : 'No suggestions waiting. Choose a minimum confidence and press “Suggest labels”.');
  } catch (err) {
    showError(err);
  }
}

function countText(n, noun) {
  return `${n.toLocaleString()} ${noun}${n === 1 ? '' : 's'}`;
}

/** Suggests a label for every unlabelled image at or above the minimum confidence, and saves them for review. */
el.propagateForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  if (reviewing) return;
  clearError();
  const min = Number(el.minConfidence.value);
  setReviewing(true);
  setSuggestionsStatus('Comparing every unlabelled image with its labelled neighbours…');
  try {
    const r = await api('POST', `/api/suggestions/propagate?${new URLSearchParams({ minConfidence: String(min), apply: 'true' })}`, { auth: true });
    const { suggestions } = await api('GET', '/api/suggestions');
    renderSuggestions(suggestions);
    setSuggestionsStatus(r.unlabelled === 0
      ? 'Every image has a label: nothing to suggest.'
      : `Checked ${countText(r.unlabelled, 'unlabelled image')}: ${countText(r.suggested, 'suggestion')} at ${Math.round(min * 100)}% confidence or more, ${r.undecided.toLocaleString()} undecided.`);
  } catch (err) {
    showError(err);
    setSuggestionsStatus('');
  } finally {
    setReviewing(false);
  }
});

function renderSuggestions(list) {
  el.suggestions.replaceChildren(...list.map(suggestionCard));
  el.acceptAll.disabled = reviewing || list.length === 0;
}

function suggestionCard(s) {
  const li = el.suggestionTemplate.content.firstElementChild.cloneNode(true);
  const name = shortName(s.path);
  li.dataset.id = String(s.id);
  li.dataset.label = s.label;
  li.dataset.path = s.path;
  const img = li.querySelector('img');
  img.src = s.thumbnailUrl;
  img.alt = `${name}, suggested label ${s.label}`;
  li.querySelector('.label-chip').textContent = s.label;
  const conf = li.querySelector('.score');
  conf.textContent = `${Math.round(s.confidence * 100)}%`;
  conf.title = 'Confidence: the suggested label’s share of the neighbours’ vote';
  li.querySelector('.name').textContent = name;
  li.querySelector('.name').title = s.path;
  const accept = li.querySelector('.accept');
  const reject = li.querySelector('.reject');
  accept.setAttribute('aria-label', `Accept “${s.label}” for ${name}`);
  reject.setAttribute('aria-label', `Reject “${s.label}” for ${name}`);
  accept.addEventListener('click', () => decide(li, 'accept'));
  reject.addEventListener('click', () => decide(li, 'reject'));
  return li;
}

/** Accepts (the suggestion becomes the label) or rejects one suggestion; the item leaves the list. */
async function decide(li, action) {
  if (reviewing) return;
  clearError();
  const buttons = li.querySelectorAll('button');
  const focused = li.contains(document.activeElement) ? document.activeElement : null; // disabling blurs it
  buttons.forEach((b) => { b.disabled = true; });
  const { id, label } = li.dataset;
  const name = shortName(li.dataset.path);
  try {
    await api('POST', `/api/suggestions/${id}/${action}`, { auth: true });
    removeSuggestion(li, action, focused);
    setSuggestionsStatus(action === 'accept' ? `Labelled ${name} “${label}”.` : `Rejected “${label}” for ${name}: it will not be suggested again.`);
    if (action === 'accept') loadLabels().catch(showError);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      removeSuggestion(li, action, focused); // decided elsewhere meanwhile
    } else {
      buttons.forEach((b) => { b.disabled = false; });
      focused?.focus();
    }
    showError(err);
  }
}

/** Removes an item, keeping keyboard focus on the same button of the next (or previous) one. */
function removeSuggestion(li, action, hadFocus) {
  const next = li.nextElementSibling || li.previousElementSibling;
  li.remove();
  el.acceptAll.disabled = reviewing || el.suggestions.children.length === 0;
  if (el.suggestions.children.length === 0) setSuggestionsStatus('All suggestions reviewed.');
  if (hadFocus) (next ? next.querySelector(`.${action}`) : el.propagate).focus();
}

el.acceptAll.addEventListener('click', async () => {
  const items = [...el.suggestions.children];
  if (reviewing || items.length === 0) return;
  if (!confirm(`Accept all ${countText(items.length, 'suggestion')} as labels?`)) return;
  clearError();
  setReviewing(true);
  let done = 0;
  try {
    for (const li of items) {
      setSuggestionsStatus(`Accepting ${(done + 1).toLocaleString()} of ${items.length.toLocaleString()}…`);
      try {
        await api('POST', `/api/suggestions/${li.dataset.id}/accept`, { auth: true });
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err; // 404: decided elsewhere meanwhile
      }
      li.remove();
      done++;
    }
    setSuggestionsStatus(`Accepted ${countText(done, 'suggestion')}.`);
  } catch (err) {
    showError(err);
    setSuggestionsStatus(`Accepted ${countText(done, 'suggestion')}; ${(items.length - done).toLocaleString()} still waiting.`);
  } finally {
    setReviewing(false);
    if (done) loadLabels().catch(showError);
    (el.acceptAll.disabled ? el.propagate : el.acceptAll).focus(); // the clicked button may be disabled now
  }
});

// ---------------------------------------------------------------- duplicates

/** Increases with every load of the groups, so a slow answer never overwrites a newer one. */
let dupesSeq = 0;
/** True while a group's copies are being removed or labelled, so two changes never interleave. */
let dupesBusy = false;
/** The measured thresholds (from an answer without a threshold of the user's), for the field's placeholder. */
let dupesDefaults = null;

function setDupesStatus(text) {
  el.dupesStatus.textContent = text;
}

/** The threshold field applies to near and similar; its placeholder is the kind's default. */
function updateThresholdField() {
  const kind = el.dupesKind.value;
  el.dupesThreshold.disabled = kind === 'exact';
  const value = kind === 'near' ? dupesDefaults?.nearCosine : kind === 'similar' ? dupesDefaults?.similarCosine : undefined;
  el.dupesThreshold.placeholder = kind === 'exact' ? '' : typeof value === 'number' ? String(value) : 'default';
}

/**
 * Loads the groups of the chosen kind. `note` (what was just done) leads the status line;
 * `focusGroup`: after a group was removed, the keyboard focus goes to the group now at that place.
 */
async function loadDuplicates({ note = '', focusGroup } = {}) {
  const kind = el.dupesKind.value;
  const q = new URLSearchParams({ kind });
  const threshold = el.dupesThreshold.value.trim();
  if (threshold !== '' && kind !== 'exact') q.set('threshold', threshold);
  const seq = ++dupesSeq;
  const lead = note ? `${note} ` : '';
  el.dupes.setAttribute('aria-busy', 'true');
  setDupesStatus(`${lead}Looking for ${kind} duplicates…`);
  try {
    const r = await api('GET', `/api/duplicates?${q}`);
    if (seq !== dupesSeq) return;
    if (!q.has('threshold')) dupesDefaults = r.thresholds;
    updateThresholdField();
    el.dupes.dataset.kind = r.kind;
    el.dupes.replaceChildren(...r.groups.map((g, i) => dupeGroup(g, i, seq)));
    const compared = r.checked.checked > 0 ? ` Compared ${countText(r.checked.checked, 'new image')} with their neighbours first.` : '';
    setDupesStatus(r.groups.length === 0
      ? `${lead}No ${r.kind} duplicates in the library.${compared}`
      : `${lead}${countText(r.groups.length, 'group')} of ${r.kind} duplicates, ${countText(r.images, r.kind === 'exact' ? 'path' : 'image')} · ${Math.round(r.tookMs)} ms.${compared}`);
    if (focusGroup !== undefined && (document.activeElement === document.body || document.activeElement === null)) {
      const groups = el.dupes.children;
      const g = groups[Math.min(focusGroup, groups.length - 1)];
      (g ? g.querySelector('.dupe-cards input:checked') : el.dupesKind)?.focus();
    }
  } catch (err) {
    if (seq !== dupesSeq) return;
    el.dupes.replaceChildren();
    delete el.dupes.dataset.kind;
    showError(err);
    setDupesStatus(note);
  } finally {
    if (seq === dupesSeq) el.dupes.setAttribute('aria-busy', 'false');
  }
}

el.dupesKind.addEventListener('change', () => {
  updateThresholdField();
  clearError();
  loadDuplicates();
});
el.dupesForm.addEventListener('submit', (e) => {
  e.preventDefault();
  clearError();
  loadDuplicates();
});

/** One group: its cards side by side, the copy to keep, and what can be done with the others. */
function dupeGroup(g, i, seq) {
  const li = el.dupeGroupTemplate.content.firstElementChild.cloneNode(true);
  const n = i + 1;
  const uid = `dupe-${seq}-${n}`;
  const exact = g.kind === 'exact';
  li.dataset.kind = g.kind;
  const title = li.querySelector('.dupe-title');
  title.id = `${uid}-title`;
  title.textContent = `Group ${n} · ${exact ? `one image under ${g.members.length} paths` : `${g.members.length} ${g.kind === 'near' ? 'copies' : 'similar images'}`}`;
  li.setAttribute('aria-labelledby', title.id);
  li.querySelector('legend').textContent = `Copy to keep in group ${n}`;
  const cards = li.querySelector('.dupe-cards');
  cards.replaceChildren(...g.members.map((m, j) => dupeCard(g, m, j, uid)));
  cards.addEventListener('change', () => {
    for (const c of cards.children) c.classList.toggle('kept', c.querySelector('input').checked);
  });

  const remove = li.querySelector('.dupe-remove');
  const form = li.querySelector('.dupe-label-form');
  const input = form.querySelector('input');
  const labelButton = form.querySelector('button');
  input.id = `${uid}-label`;
  const inputLabel = form.querySelector('label');
  inputLabel.htmlFor = input.id;
  inputLabel.textContent = `Label for every image in group ${n}`;
  const labels = new Set(g.members.map((m) => m.label ?? ''));
  if (labels.size === 1) input.value = [...labels][0];
  const result = li.querySelector('.dupe-result');
  result.id = `${uid}-result`;
  remove.setAttribute('aria-describedby', title.id);
  labelButton.setAttribute('aria-describedby', title.id);

  if (exact) {
    // One stored image under several paths: the API removes and labels images, not paths.
    const note = li.querySelector('.dupe-note');
    note.id = `${uid}-note`;
    note.hidden = false;
    note.textContent = 'These paths hold the same bytes: the library stores them as one image, so removing one of the paths is not supported, and a label already applies to all of them. To drop a copy, delete or move its file, then index its folder again.';
    for (const c of [remove, labelButton, input, ...cards.querySelectorAll('input')]) {
      c.disabled = true;
      c.setAttribute('aria-describedby', `${title.id} ${note.id}`);
    }
    return li;
  }
  remove.addEventListener('click', () => removeOthers(li, g, n));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    labelGroup(li, g, n, input.value.trim());
  });
  return li;
}

/** One member: thumbnail, size, file size, date, evidence, name, label, and its "keep" radio. */
function dupeCard(g, m, j, uid) {
  const li = el.dupeCardTemplate.content.firstElementChild.cloneNode(true);
  const name = shortName(m.path);
  li.dataset.id = String(m.id);
  li.dataset.path = m.path;
  li.dataset.index = String(j);
  const img = li.querySelector('img');
  img.src = m.thumbnailUrl;
  img.alt = `${name}, ${m.width} × ${m.height}`;
  if (j === 0) {
    li.classList.add('best-copy');
    if (g.kind !== 'exact') li.classList.add('kept');
    li.querySelector('.best').hidden = false;
  }
  li.querySelector('.dims').textContent = `${m.width}×${m.height}`;
  const bytes = li.querySelector('.bytes');
  bytes.textContent = sizeText(m.bytes);
  bytes.title = `${m.bytes.toLocaleString()} bytes`;
  li.querySelector('.dupe-date').replaceChildren(dateNode(m.mtimeMs));
  const evidence = evidenceText(g, m, j);
  const ev = li.querySelector('.dupe-evidence');
  ev.hidden = !evidence;
  if (evidence) {
    ev.textContent = evidence.text;
    ev.title = evidence.title;
  }
  const nameEl = li.querySelector('.name');
  nameEl.textContent = name;
  nameEl.title = m.path;
  setDupeChip(li, m.label);
  const radio = li.querySelector('input');
  radio.name = `${uid}-keep`;
  radio.value = String(j);
  radio.checked = j === 0;
  radio.setAttribute('aria-label', `Keep this copy: ${name}`);
  return li;
}

function setDupeChip(card, label) {
  const chip = card.querySelector('.label-chip');
  chip.hidden = !label;
  chip.textContent = label ?? '';
  card.dataset.label = label ?? '';
}

/** What joins a member to the group's best copy, in words; null for the best copy itself. */
function evidenceText(g, m, j) {
  if (g.kind === 'exact') return { text: 'same bytes', title: 'The same file content as the other paths: one image in the library' };
  if (j === 0) return null;
  const e = m.evidence;
  if (!e) return { text: 'joined through another copy', title: 'Not compared with the best copy directly: it is a duplicate of another image of this group' };
  const cosine = e.cosine.toFixed(3);
  const verified = e.inliers >= 0;
  return {
    text: `cosine ${cosine}${verified ? ` · ${e.inliers} ${e.inliers === 1 ? 'inlier' : 'inliers'}` : ''}`,
    title: `${e.kind === 'near' ? 'A near copy' : 'A similar image'} of the best copy: cosine similarity ${cosine}${verified ? `, ${e.inliers} local features agree on one geometric transform` : ' (not verified: no local features)'}`,
  };
}

/** When a photo was taken (`takenAt`, ISO 8601, from its capture metadata) as a date; the time in its tooltip. */
function takenNode(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) {
    const s = document.createElement('span');
    s.textContent = `Taken ${iso}`;
    return s;
  }
  const t = document.createElement('time');
  t.dateTime = iso;
  t.textContent = `Taken ${d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' })}`;
  t.title = `Taken ${d.toLocaleString()}`;
  return t;
}

/** A file size: bytes, KB or MB (1 KB = 1024 bytes). */
function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** The file's date, or "upload" for an upload (no file date: mtimeMs 0). */
function dateNode(ms) {
  if (!ms) {
    const s = document.createElement('span');
    s.textContent = 'upload';
    s.title = 'Uploaded to the server: no file date';
    return s;
  }
  const d = new Date(ms);
  const t = document.createElement('time');
  t.dateTime = d.toISOString();
  t.textContent = d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
  t.title = `File modified ${d.toLocaleString()}`;
  return t;
}

/** Disables a group's controls while it changes; returns a function that enables them and gives the focus back. */
function busyGroup(groupLi) {
  dupesBusy = true;
  const focused = groupLi.contains(document.activeElement) ? document.activeElement : null; // disabling blurs it
  groupLi.setAttribute('aria-busy', 'true');
  const controls = [...groupLi.querySelectorAll('button, input')].filter((c) => !c.disabled);
  controls.forEach((c) => { c.disabled = true; });
  return () => {
    dupesBusy = false;
    groupLi.setAttribute('aria-busy', 'false');
    controls.forEach((c) => { c.disabled = false; });
    if (focused && focused.isConnected && (document.activeElement === document.body || document.activeElement === null)) focused.focus();
  };
}

function copiesText(n) {
  return `${n.toLocaleString()} ${n === 1 ? 'copy' : 'copies'}`;
}

/** Removes every member but the chosen one from the library (the files stay on disk), then loads the groups again. */
async function removeOthers(groupLi, g, n) {
  if (dupesBusy || g.kind === 'exact') return;
  const checked = groupLi.querySelector('.dupe-cards input:checked');
  const keep = g.members[checked ? Number(checked.value) : 0];
  const others = g.members.filter((m) => m.id !== keep.id);
  if (others.length === 0) return;
  const keptName = shortName(keep.path);
  const uploads = others.filter((m) => !m.mtimeMs).length;
  const what = others.length === 1 ? `the other copy (${shortName(others[0].path)})` : `the ${others.length} other copies`;
  const message = `Remove ${what} of group ${n} from the library, keeping ${keptName}?\n\n`
    + 'The files on disk are not deleted: they are only taken out of the library, so searches no longer find them (indexing their folder again brings them back).'
    + (uploads ? `\n\n${uploads === 1 ? 'One of them is an upload' : `${uploads} of them are uploads`}: the server's own stored copy of an upload is deleted with it.` : '');
  if (!confirm(message)) return;
  clearError();
  const result = groupLi.querySelector('.dupe-result');
  const done = busyGroup(groupLi);
  let removed = 0;
  let failed = null;
  for (const m of others) {
    result.textContent = `Removing ${removed + 1} of ${others.length} from the library…`;
    try {
      await api('DELETE', `/api/images/${m.id}`, { auth: true });
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) { // 404: removed elsewhere meanwhile
        failed = err;
        break;
      }
    }
    removed++;
  }
  const index = [...el.dupes.children].indexOf(groupLi);
  if (failed) showError(failed);
  if (removed === 0) {
    result.textContent = '';
    done();
    return;
  }
  dupesBusy = false;
  const note = `Removed ${failed ? `${removed} of ${others.length}` : copiesText(removed)} from group ${n}, kept ${keptName}; the files are still on disk.`;
  await loadDuplicates({ note, focusGroup: index });
}

/** Sets the same label on every image of a group. */
async function labelGroup(groupLi, g, n, label) {
  if (dupesBusy || g.kind === 'exact' || !label) return;
  clearError();
  const ids = [...new Set(g.members.map((m) => m.id))];
  const result = groupLi.querySelector('.dupe-result');
  result.classList.remove('ok');
  const done = busyGroup(groupLi);
  let labelled = 0;
  try {
    for (const id of ids) {
      result.textContent = `Labelling ${labelled + 1} of ${ids.length}…`;
      const rec = await api('PUT', `/api/images/${id}/label`, { json: { label }, auth: true });
      for (const card of groupLi.querySelectorAll(`.dupe-card[data-id="${id}"]`)) setDupeChip(card, rec.label);
      labelled++;
    }
    result.textContent = `Labelled the ${ids.length} images of group ${n} “${label}”.`;
    result.classList.add('ok');
  } catch (err) {
    showError(err);
    result.textContent = labelled ? `Labelled ${labelled} of the ${ids.length} images of group ${n} “${label}”.` : '';
  } finally {
    done();
    if (labelled) loadLabels().catch(showError);
  }
}

// ---------------------------------------------------------------- browse (browse.js)

const browse = initBrowse({
  api, ApiError, showError, clearError, shortName, countText, takenNode,
  similar: (id) => {
    selectTab(el.tabs[0]);
    searchById(id);
  },
  labelsChanged: () => loadLabels().catch(showError),
});

// ---------------------------------------------------------------- start

loadLabels().catch(showError);
/** The tab a URL's hash names (#browse, #library...), if any. */
const tabOfHash = () => el.tabs.find((t) => location.hash === `#${t.id.slice(4)}`);
const startTab = tabOfHash();
if (startTab && startTab !== el.tabs[0]) selectTab(startTab);
window.addEventListener('hashchange', () => {
  const tab = tabOfHash();
  if (tab && tab.getAttribute('aria-selected') !== 'true') selectTab(tab);
});
