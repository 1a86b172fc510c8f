// pixdex web page: search by photo, similar-by-id, classify, labels, library stats and indexing.
// Plain ES module, no build step; talks to the JSON API under /api (see /openapi.json).

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'pixdex.token';
const POLL_MS = 500;

const el = {
  tabs: [$('tab-search'), $('tab-library')],
  alert: $('alert'), alertText: $('alert-text'), alertClose: $('alert-close'),
  tokenBox: $('token-box'), tokenForm: $('token-form'), token: $('token'),
  drop: $('drop'), file: $('file'), k: $('k'), labelFilter: $('label-filter'),
  query: $('query'), queryImg: $('query-img'), queryCaption: $('query-caption'), back: $('back'),
  classify: $('classify'), predLabel: $('pred-label'), predConf: $('pred-conf'), votes: $('votes'),
  status: $('status'), grid: $('grid'), cardTemplate: $('card-template'), labelOptions: $('label-options'),
  facts: { images: $('fact-images'), labels: $('fact-labels'), backbone: $('fact-backbone'), space: $('fact-space'), backend: $('fact-backend') },
  labelsBody: $('labels-body'),
  indexForm: $('index-form'), indexPath: $('index-path'), indexLabelFolder: $('index-label-folder'),
  indexStart: $('index-start'), indexCancel: $('index-cancel'),
  job: $('index-job'), jobLabel: $('index-progress-label'), progress: $('index-progress'), jobText: $('index-text'), jobErrors: $('index-errors'),
};

/** What the grid currently shows: the uploaded photo, or an indexed image by id. */
let current = null;
/** The last uploaded photo, to go back to after browsing by id. */
let lastUpload = null;
/** Increases with every query, so a slow answer never overwrites a newer one. */
let querySeq = 0;
let pollTimer = 0;
let runningJobId = null;

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves to the JSON body, or throws ApiError with the server's message. */
async function api(method, url, { body, json, auth = false } = {}) {
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
  return data;
}

function upload(url, file) {
  const form = new FormData();
  form.append('image', file, file.name || 'pasted-image');
  return api('POST', url, { body: form });
}

// ---------------------------------------------------------------- messages

function showError(err) {
  let text = err instanceof ApiError ? err.message : `Something went wrong: ${err && err.message ? err.message : err}`;
  text = text.charAt(0).toUpperCase() + text.slice(1); // server messages may start with a file name or "query image"
  if (err instanceof ApiError && err.status === 401) {
    text += '. Enter the server token under “Token” (top right), then try again.';
    el.tokenBox.open = true;
  }
  el.alertText.textContent = text;
  el.alert.dataset.code = err instanceof ApiError ? err.code : 'ERROR';
  el.alert.hidden = false;
}

function clearError() {
  el.alert.hidden = true;
  el.alertText.textContent = '';
}

function setStatus(text) {
  el.status.textContent = text;
}

el.alertClose.addEventListener('click', clearError);

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
  history.replaceState(null, '', tab.id === 'tab-library' ? '#library' : '#');
  if (tab.id === 'tab-library') {
    loadLibrary();
    resumeJob();
  }
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
    el.facts.backbone.textContent = `${stats.backbone} (${stats.dims}-d)`;
    el.facts.space.textContent = spaceText(stats.space);
    el.facts.backend.textContent = stats.backend;
    el.facts.backend.title = stats.backendReason || '';
  } catch (err) {
    showError(err);
  }
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
  const [search, vote] = await Promise.allSettled([
    upload(`/api/search?${queryString()}`, file),
    upload(`/api/classify?k=${kValue()}`, file),
  ]);
  if (seq !== querySeq) return;
  el.grid.setAttribute('aria-busy', 'false');
  if (search.status === 'rejected') {
    showError(search.reason);
    setStatus(current ? el.status.dataset.last || '' : 'Drop a photo to find similar images in your library.');
    return;
  }
  if (lastUpload) URL.revokeObjectURL(lastUpload.url);
  lastUpload = { file, url: URL.createObjectURL(file) };
  current = { kind: 'file', file };
  showQuery(lastUpload.url, `Your photo: ${file.name || 'pasted image'}`, `Your photo ${file.name || ''}`.trim());
  el.back.hidden = true;
  renderVote(vote.status === 'fulfilled' ? vote.value : null);
  renderResults(search.value.results, `${search.value.results.length} similar images to your photo · ${Math.round(search.value.tookMs)} ms`);
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
    if (seq === querySeq) showError(err);
  } finally {
    if (seq === querySeq) el.grid.setAttribute('aria-busy', 'false');
  }
}

function rerun() {
  if (!current) return;
  if (current.kind === 'file') searchFile(current.file);
  else searchById(current.id);
}

function showQuery(src, caption, alt) {
  el.queryImg.src = src;
  el.queryImg.alt = alt;
  el.queryCaption.textContent = caption;
  el.query.hidden = false;
}

function renderVote(vote) {
  if (!vote) {
    el.classify.hidden = true;
    return;
  }
  el.classify.hidden = false;
  el.predLabel.textContent = vote.label ?? 'No label';
  el.predConf.textContent = vote.label ? `${Math.round(vote.confidence * 100)}% confidence` : '(no labelled neighbours)';
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

function renderResults(results, headline) {
  el.status.dataset.last = headline;
  setStatus(results.length ? headline : 'No similar images: the library is empty, or nothing has this label.');
  el.grid.replaceChildren(...results.map(card));
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
  li.querySelector('.name').textContent = name;
  li.querySelector('.name').title = r.path;
  setCardLabel(li, r.label, name);

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
el.labelFilter.addEventListener('change', rerun);

// ---------------------------------------------------------------- drop, pick, paste

el.file.addEventListener('change', () => {
  const f = el.file.files && el.file.files[0];
  if (f) searchFile(f);
  el.file.value = ''; // picking the same file again searches again
});

function imageFrom(dataTransfer) {
  if (!dataTransfer) return null;
  if (dataTransfer.files && dataTransfer.files.length) return dataTransfer.files[0];
  for (const item of dataTransfer.items || []) {
    if (item.kind === 'file') return item.getAsFile();
  }
  return null;
}

let dragDepth = 0;
document.addEventListener('dragenter', (e) => {
  if (!e.dataTransfer || ![...e.dataTransfer.types].includes('Files')) return;
  dragDepth++;
  el.drop.classList.add('over');
});
document.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) el.drop.classList.remove('over');
});
document.addEventListener('dragover', (e) => e.preventDefault());
document.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  el.drop.classList.remove('over');
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
    text = `Done: ${s.added} added, ${s.updated} updated, ${s.skipped} unchanged, ${s.failed} failed, ${s.removed} removed, in ${s.seconds} s.`;
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

// ---------------------------------------------------------------- start

loadLabels().catch(showError);
if (location.hash === '#library') selectTab(el.tabs[1]);
