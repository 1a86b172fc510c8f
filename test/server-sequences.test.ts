/**
 * Issue 21: the HTTP server under sequences of requests stays up and stays right. A model-based
 * property test (fast-check `commands` + `asyncModelRun`, fixed seed) drives the real app on a
 * real port over a fresh, EMPTY library (the crash of issue 21 happened on empty libraries) with
 * a pool of 12 small real photos (hymenoptera, shrunk to 160 px JPEG once): 10 distinct photos,
 * a byte-identical copy of the first, and a truncated JPEG.
 *
 * Commands: upload (multipart field label, ?label=, raw body), delete, label/unlabel, search by
 * upload (k, label filter, expand), similar by id, classify, thumbnail, stats, bad uploads (empty,
 * truncated, not an image, missing, bad label, no token) and bad requests (unknown id, bad k, bad
 * id, non-JSON label, bad paths, unknown job, no classifier), a restart of the server on the same
 * data folder, twin uploads of identical bytes at once, an index job cancelled early, and bursts
 * of concurrent requests (search, upload, label, delete, similar, stats, a second job), with or
 * without an index job (POST /api/index over a temp folder, polled to the end) running under them.
 *
 * The model is the set of live images by content (sha256) with their id and label. After every
 * command: /healthz and /api/stats answer, stats.images == the model's size, label counts and
 * every image's label match the model, the uploads folder keeps only live content, no request
 * ever got a 5xx, every 4xx is `{ error: { code, message } }`, and the log has no unexpected error.
 *
 * Sequences that failed once are kept below as explicit cases. PIXDEX_SEQ_RUNS, PIXDEX_SEQ_SEED
 * and PIXDEX_SEQ_COMMANDS override numRuns, the seed and the longest sequence; PIXDEX_SEQ_SHRINK=1
 * shrinks a failure (off by default: shrinking reruns many sequences).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import sharp from 'sharp';
import type { Express } from 'express';
import { createApp } from '../server/app.ts';
import type { IndexJobs } from '../server/jobs.ts';
import { Engine, MAX_K } from '../src/engine.ts';
import { softKey } from '../src/local/rerank.ts';
import { HYM_TRAIN, HYM_VAL, engineOptions, imagesIn } from './fixtures.ts';

const TOKEN = 'sequences-token-0123456789';
const SEED = Number(process.env.PIXDEX_SEQ_SEED ?? 21_2026);
const NUM_RUNS = Number(process.env.PIXDEX_SEQ_RUNS ?? 80);
const MAX_COMMANDS = Number(process.env.PIXDEX_SEQ_COMMANDS ?? 16);
const LABELS = ['ants', 'bees', 'wasps'] as const;
/** A job over 5 small files takes well under a second; this only bounds a hang. */
const JOB_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------- the photo pool

interface Photo {
  name: string;
  bytes: Buffer;
  /** sha256 of the bytes: the content key of the model. */
  key: string;
}

/** Pool indices 0..9 are distinct photos; 10 is a byte-identical copy of 0. */
const TWIN = 10;
const POOL_SIZE = 11;
let pool: Photo[] = [];
/** A truncated JPEG (the 12th file of the pool): its header decodes, its pixels do not. */
let corrupt: Buffer = Buffer.alloc(0);
/** What the index-job folder holds: photos 2 and 3, photo 0 twice (byte-identical), and the corrupt file. */
const FOLDER_PHOTOS: ReadonlyArray<[name: string, photo: number]> = [['a.jpg', 2], ['b.jpg', 3], ['twin1.jpg', 0], ['twin2.jpg', TWIN]];
const FOLDER_FILES = FOLDER_PHOTOS.length + 1;
let folderKeys = new Set<string>();

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function makePool(): Promise<void> {
  const pick = (dir: string, n: number): string[] => imagesIn(dir).filter((_, i) => i % 17 === 3).slice(0, n);
  const files = [
    ...pick(path.join(HYM_TRAIN, 'ants'), 3), ...pick(path.join(HYM_TRAIN, 'bees'), 3),
    ...pick(path.join(HYM_VAL, 'ants'), 2), ...pick(path.join(HYM_VAL, 'bees'), 2),
  ];
  assert.equal(files.length, 10);
  const photos = await Promise.all(files.map(async (f) => {
    const bytes = await sharp(f).rotate().resize(160, 160, { fit: 'inside' }).jpeg({ quality: 85 }).toBuffer();
    return { name: `${path.basename(path.dirname(f))}/${path.basename(f)}`, bytes, key: sha256(bytes) };
  }));
  pool = [...photos, { ...photos[0], name: `${photos[0].name} (byte-identical copy)`, bytes: Buffer.from(photos[0].bytes) }];
  assert.equal(new Set(pool.map((p) => p.key)).size, 10);
  corrupt = pool[5].bytes.subarray(0, Math.floor(pool[5].bytes.length * 0.4));
  folderKeys = new Set(FOLDER_PHOTOS.map(([, p]) => pool[p].key));
}

// ---------------------------------------------------------------------------- the real system

interface Reply {
  status: number;
  body: any;
  headers: Headers;
}

interface Call {
  /** Multipart form, raw bytes or a JSON value. */
  form?: FormData;
  raw?: { bytes: Uint8Array; type: string };
  json?: unknown;
  text?: { body: string; type: string };
  auth?: boolean;
}

/** One server over one data folder; `restart` closes and reopens it like `pixdex serve` would. */
class Server {
  readonly dir: string;
  readonly dataDir: string;
  readonly uploadsDir: string;
  readonly folder: string;
  readonly log: string[] = [];
  engine!: Engine;
  app!: Express;
  server!: http.Server;
  base = '';

  private constructor(dir: string) {
    this.dir = dir;
    this.dataDir = path.join(dir, 'data');
    this.uploadsDir = path.join(dir, 'uploads');
    this.folder = path.join(dir, 'library');
  }

  static async start(): Promise<Server> {
    const s = new Server(fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-seq-')));
    fs.mkdirSync(s.folder);
    for (const [name, p] of FOLDER_PHOTOS) fs.writeFileSync(path.join(s.folder, name), pool[p].bytes);
    fs.writeFileSync(path.join(s.folder, 'broken.jpg'), corrupt);
    await s.open();
    return s;
  }

  private async open(): Promise<void> {
    this.engine = await Engine.open({ ...engineOptions(this.dataDir), workers: 1 });
    this.app = createApp(this.engine, { token: TOKEN, uploadsDir: this.uploadsDir, log: (l) => this.log.push(l) });
    this.server = http.createServer(this.app);
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async close(): Promise<void> {
    const closed = new Promise((resolve) => this.server.close(resolve));
    this.server.closeAllConnections();
    await closed;
    await (this.app.locals.indexJobs as IndexJobs).stop();
    await this.engine.close();
  }

  async restart(): Promise<void> {
    await this.close();
    await this.open();
  }

  async stop(): Promise<void> {
    try {
      await this.close();
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** A request; never a 5xx, and every 4xx is a JSON error body. */
  async call(method: string, url: string, c: Call = {}): Promise<Reply> {
    const headers: Record<string, string> = c.auth ? { authorization: `Bearer ${TOKEN}` } : {};
    let body: BodyInit | undefined;
    if (c.form) body = c.form;
    else if (c.raw) {
      body = new Uint8Array(c.raw.bytes);
      headers['content-type'] = c.raw.type;
    } else if (c.json !== undefined) {
      body = JSON.stringify(c.json);
      headers['content-type'] = 'application/json';
    } else if (c.text) {
      body = c.text.body;
      headers['content-type'] = c.text.type;
    }
    const res = await fetch(this.base + url, { method, body, headers });
    const text = await res.text();
    const isJson = res.headers.get('content-type')?.startsWith('application/json');
    const reply: Reply = { status: res.status, body: isJson ? JSON.parse(text) : text, headers: res.headers };
    const what = `${method} ${url} → ${res.status} ${text.slice(0, 300)}`;
    assert.ok(res.status < 500, `5xx: ${what}\nlog:\n${this.log.filter((l) => l.startsWith('error')).join('\n')}`);
    if (res.status >= 400) {
      assert.ok(isJson, `a ${res.status} that is not JSON: ${what}`);
      assert.deepEqual(Object.keys(reply.body), ['error'], what);
      assert.equal(typeof reply.body.error.code, 'string', what);
      assert.equal(typeof reply.body.error.message, 'string', what);
    }
    return reply;
  }
}

function imageForm(bytes: Uint8Array, fields: Record<string, string> = {}): FormData {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(bytes)], { type: 'image/jpeg' }), 'upload.jpg');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return form;
}

function expectError(r: Reply, status: number, codes: string | string[], what: string): void {
  const allowed = typeof codes === 'string' ? [codes] : codes;
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
  assert.ok(allowed.includes(r.body.error.code), `${what}: code ${r.body.error.code}, expected ${allowed.join(' or ')}`);
}

// ---------------------------------------------------------------------------- the model

interface Entry {
  id: number;
  label: string | null;
}

class Model {
  /** Live images by content key. */
  live = new Map<string, Entry>();
  /** Highest id handed out so far (ids only grow). */
  maxId = 0;
  /** Ids removed, for the 404 cases. */
  dead: number[] = [];

  ids(): Set<number> {
    return new Set([...this.live.values()].map((e) => e.id));
  }

  keyOf(id: number): string | undefined {
    for (const [k, e] of this.live) if (e.id === id) return k;
    return undefined;
  }

  /** The live entries sorted by id; `pick` chooses one (modulo), or undefined when empty. */
  pick(pick: number, exclude: (key: string, e: Entry) => boolean = () => false): [string, Entry] | undefined {
    const all = [...this.live].filter(([k, e]) => !exclude(k, e)).sort((a, b) => a[1].id - b[1].id);
    return all.length === 0 ? undefined : all[pick % all.length];
  }

  labelCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.live.values()) if (e.label !== null) out[e.label] = (out[e.label] ?? 0) + 1;
    return out;
  }

  deadId(): number {
    return this.dead.at(-1) ?? 999_999;
  }
}

/** After every command: the server answers and agrees with the model. */
async function checkInvariants(m: Model, s: Server, after: string): Promise<void> {
  const ctx = `after ${after}`;
  assert.equal((await s.call('GET', '/healthz')).status, 200, ctx);
  const stats = await s.call('GET', '/api/stats');
  assert.equal(stats.status, 200, ctx);
  assert.equal(stats.body.images, m.live.size, `${ctx}: stats.images`);
  assert.equal(stats.body.index.size, m.live.size, `${ctx}: stats.index.size (live vectors in HNSW)`);
  assert.deepEqual(stats.body.labels, m.labelCounts(), `${ctx}: stats.labels`);
  const labels = await s.call('GET', '/api/labels');
  assert.deepEqual(Object.fromEntries(labels.body.labels.map((l: { label: string; count: number }) => [l.label, l.count])), m.labelCounts(), `${ctx}: /api/labels`);
  for (const [key, e] of m.live) {
    const r = await s.call('GET', `/api/images/${e.id}`);
    assert.equal(r.status, 200, `${ctx}: image ${e.id}`);
    assert.equal(r.body.sha256, key, `${ctx}: image ${e.id} content`);
    assert.equal(r.body.label, e.label, `${ctx}: image ${e.id} label`);
  }
  for (const id of m.dead.slice(-3)) assert.equal((await s.call('GET', `/api/images/${id}`)).status, 404, `${ctx}: removed image ${id}`);
  // Uploads are kept as <sha256>.<ext> while their image lives: nothing else stays behind.
  const kept = fs.existsSync(s.uploadsDir) ? fs.readdirSync(s.uploadsDir) : [];
  for (const f of kept) assert.ok(m.live.has(f.split('.')[0]), `${ctx}: uploads folder keeps ${f}, whose content is not live`);
  const jobs = await s.call('GET', '/api/index');
  assert.ok(jobs.body.jobs.every((j: { state: string }) => j.state !== 'running'), `${ctx}: a job still running`);
  const unexpected = s.log.filter((l) => l.startsWith('error'));
  assert.deepEqual(unexpected, [], `${ctx}: unexpected errors in the log`);
}

/** Result ids are distinct, live (in `allowed`), ordered by score, with the model's labels. */
function checkResults(results: Array<{ id: number; score: number; label: string | null; inliers?: number; verified?: boolean }>, allowed: Set<number>, labelOf: (id: number) => string | null | undefined, what: string): void {
  const ids = results.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length, `${what}: duplicate ids ${ids}`);
  for (const r of results) {
    assert.ok(allowed.has(r.id), `${what}: result id ${r.id} is not live (live: ${[...allowed]})`);
    const l = labelOf(r.id);
    if (l !== undefined) assert.equal(r.label, l, `${what}: label of result ${r.id}`);
  }
  // Verified search results (local features, src/local/rerank.ts): verified hits first by inliers,
  // the rest by score plus the small inlier bonus; plain results by score.
  const key = (r: (typeof results)[number]): number[] => (r.inliers === undefined ? [0, r.score] : r.verified ? [1, r.inliers] : [0, softKey(r)]);
  for (let i = 1; i < results.length; i++) {
    const [a, b] = [key(results[i - 1]), key(results[i])];
    assert.ok(a[0] > b[0] || (a[0] === b[0] && a[1] >= b[1] - 1e-9), `${what}: results not in rank order`);
  }
}

// ---------------------------------------------------------------------------- commands

const counters = { commands: 0, toleratedLostLabels: 0 };

/**
 * An upload whose identical content is being added at the same moment (by another upload or an
 * index job) keeps its label (issue 21: it was dropped; found by this test). `strict: false` lets
 * a command accept the lost label and count it, for runs against an engine without the fix.
 */

/** The label an upload that raced with an identical add should have set: `expected`, or (known bug) `lost`. */
async function racingLabel(s: Server, id: number, expected: string | null, lost: string | null, strict: boolean): Promise<string | null> {
  if (strict || expected === lost) return expected;
  const actual = (await s.call('GET', `/api/images/${id}`)).body.label as string | null;
  if (actual === lost && actual !== expected) counters.toleratedLostLabels++;
  return actual === lost ? lost : expected;
}

abstract class Cmd implements fc.AsyncCommand<Model, Server> {
  check(_m: Readonly<Model>): boolean {
    return true;
  }
  async run(m: Model, s: Server): Promise<void> {
    counters.commands++;
    await this.apply(m, s);
    await checkInvariants(m, s, this.toString());
  }
  abstract apply(m: Model, s: Server): Promise<void>;
  abstract toString(): string;
}

type UploadVia = 'form' | 'query' | 'raw';

/** Sends an upload and checks it against the model (which it updates); not for concurrent use. */
async function upload(m: Model, s: Server, photo: number, label: string | undefined, via: UploadVia): Promise<number> {
  const p = pool[photo];
  const q = label !== undefined && via !== 'form' ? `?label=${encodeURIComponent(label)}` : '';
  const r = via === 'raw'
    ? await s.call('POST', `/api/images${q}`, { raw: { bytes: p.bytes, type: 'image/jpeg' }, auth: true })
    : await s.call('POST', `/api/images${q}`, { form: imageForm(p.bytes, label !== undefined && via === 'form' ? { label } : {}), auth: true });
  const existing = m.live.get(p.key);
  const what = `upload ${photo}`;
  if (existing) {
    assert.equal(r.status, 200, `${what}: identical content: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.id, existing.id, `${what}: identical content must give the existing id`);
    if (label !== undefined) existing.label = label;
  } else {
    assert.equal(r.status, 201, `${what}: ${JSON.stringify(r.body)}`);
    assert.ok(r.body.id > m.maxId, `${what}: new id ${r.body.id} not above ${m.maxId}`);
    m.live.set(p.key, { id: r.body.id, label: label ?? null });
    m.maxId = r.body.id;
  }
  assert.equal(r.headers.get('location'), `/api/images/${r.body.id}`);
  return r.body.id;
}

class Upload extends Cmd {
  constructor(readonly photo: number, readonly label: string | undefined, readonly via: UploadVia) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    await upload(m, s, this.photo, this.label, this.label === undefined || this.via !== 'raw' ? this.via : 'query');
  }
  toString(): string {
    return `Upload(${this.photo}, ${JSON.stringify(this.label)}, ${this.via})`;
  }
}

type BadUpload = 'empty' | 'corrupt' | 'garbage' | 'missing' | 'badLabel' | 'noToken';

class UploadBad extends Cmd {
  constructor(readonly kind: BadUpload, readonly route: 'images' | 'search' | 'classify') {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const url = `/api/${this.route}`;
    const auth = this.route === 'images';
    const what = this.toString();
    switch (this.kind) {
      case 'empty':
        return expectError(await s.call('POST', url, { form: imageForm(Buffer.alloc(0)), auth }), 400, 'EMPTY_IMAGE', what);
      case 'corrupt':
        return expectError(await s.call('POST', url, { form: imageForm(corrupt), auth }), 400, ['TRUNCATED_IMAGE', 'CORRUPT_IMAGE'], what);
      case 'garbage':
        return expectError(await s.call('POST', url, { raw: { bytes: Buffer.from('not an image at all'), type: 'image/jpeg' }, auth }), 415, 'UNSUPPORTED_IMAGE', what);
      case 'missing':
        return expectError(await s.call('POST', url, { auth }), 400, 'MISSING_IMAGE', what);
      case 'badLabel':
        if (this.route === 'classify') return expectError(await s.call('POST', `${url}?minConfidence=2`, { form: imageForm(pool[1].bytes) }), 400, 'INVALID_PARAMETER', what);
        if (this.route === 'search') return expectError(await s.call('POST', `${url}?label=%01`, { form: imageForm(pool[1].bytes) }), 400, 'INVALID_PARAMETER', what);
        return expectError(await s.call('POST', url, { form: imageForm(pool[1].bytes, { label: 'a\u0001b' }), auth }), 400, 'INVALID_PARAMETER', what);
      case 'noToken':
        if (this.route !== 'images') return expectError(await s.call('DELETE', `/api/images/${m.pick(0)?.[1].id ?? 1}`), 401, 'UNAUTHORIZED', what);
        return expectError(await s.call('POST', url, { form: imageForm(pool[1].bytes) }), 401, 'UNAUTHORIZED', what);
    }
  }
  toString(): string {
    return `UploadBad(${this.kind}, ${this.route})`;
  }
}

class Delete extends Cmd {
  constructor(readonly pick: number) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const target = m.pick(this.pick);
    if (!target) {
      const id = m.deadId();
      return expectError(await s.call('DELETE', `/api/images/${id}`, { auth: true }), 404, 'NOT_FOUND', `delete of unknown id ${id}`);
    }
    const [key, e] = target;
    const r = await s.call('DELETE', `/api/images/${e.id}`, { auth: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { removed: e.id });
    m.live.delete(key);
    m.dead.push(e.id);
    expectError(await s.call('DELETE', `/api/images/${e.id}`, { auth: true }), 404, 'NOT_FOUND', `second delete of ${e.id}`);
  }
  toString(): string {
    return `Delete(${this.pick})`;
  }
}

class Label extends Cmd {
  constructor(readonly pick: number, readonly label: string | null) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const target = m.pick(this.pick);
    if (!target) {
      const id = m.deadId();
      return expectError(await s.call('PUT', `/api/images/${id}/label`, { json: { label: this.label }, auth: true }), 404, 'NOT_FOUND', `label of unknown id ${id}`);
    }
    const [, e] = target;
    const r = await s.call('PUT', `/api/images/${e.id}/label`, { json: { label: this.label }, auth: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.id, e.id);
    assert.equal(r.body.label, this.label);
    e.label = this.label;
  }
  toString(): string {
    return `Label(${this.pick}, ${JSON.stringify(this.label)})`;
  }
}

/** Search-by-upload expectations: live ids, the model's labels, min(k, candidates) results, an indexed query first. */
function checkSearch(m: Model, photo: number, k: number, label: string | undefined, body: any, what: string): void {
  const live = m.ids();
  const labelOf = (id: number): string | null | undefined => [...m.live.values()].find((e) => e.id === id)?.label;
  checkResults(body.results, live, labelOf, what);
  const candidates = [...m.live.values()].filter((e) => label === undefined || e.label === label);
  if (label !== undefined) for (const r of body.results) assert.equal(r.label, label, `${what}: label filter`);
  assert.equal(body.results.length, Math.min(k, candidates.length), `${what}: result count (k ${k}, ${candidates.length} candidates)`);
  const self = m.live.get(pool[photo].key);
  if (self && (label === undefined || self.label === label)) {
    assert.equal(body.results[0].id, self.id, `${what}: the indexed query photo comes first`);
    assert.ok(body.results[0].score >= 0.99, `${what}: score of itself ${body.results[0].score}`);
  }
}

class Search extends Cmd {
  constructor(readonly photo: number, readonly k: number, readonly label: string | undefined, readonly expand: number) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const q = new URLSearchParams({ k: String(this.k), ...(this.label ? { label: this.label } : {}), ...(this.expand ? { expand: String(this.expand) } : {}) });
    const r = await s.call('POST', `/api/search?${q}`, { form: imageForm(pool[this.photo].bytes) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    checkSearch(m, this.photo, this.k, this.label, r.body, this.toString());
  }
  toString(): string {
    return `Search(${this.photo}, k=${this.k}, label=${JSON.stringify(this.label)}, expand=${this.expand})`;
  }
}

class Similar extends Cmd {
  constructor(readonly pick: number, readonly k: number) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const target = m.pick(this.pick);
    if (!target) {
      const id = m.deadId();
      return expectError(await s.call('GET', `/api/images/${id}/similar?k=${this.k}`), 404, 'NOT_FOUND', `similar of unknown id ${id}`);
    }
    const [, e] = target;
    const r = await s.call('GET', `/api/images/${e.id}/similar?k=${this.k}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const others = m.ids();
    others.delete(e.id);
    checkResults(r.body.results, others, (id) => [...m.live.values()].find((x) => x.id === id)?.label, this.toString());
    assert.equal(r.body.results.length, Math.min(this.k, others.size), `${this}: result count`);
  }
  toString(): string {
    return `Similar(${this.pick}, k=${this.k})`;
  }
}

class Classify extends Cmd {
  constructor(readonly photo: number, readonly k: number) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const r = await s.call('POST', `/api/classify?k=${this.k}`, { form: imageForm(pool[this.photo].bytes) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const labelled = new Set([...m.live.values()].filter((e) => e.label !== null).map((e) => e.id));
    checkResults(r.body.neighbors, labelled, (id) => [...m.live.values()].find((x) => x.id === id)?.label, this.toString());
    assert.equal(r.body.neighbors.length, Math.min(this.k, labelled.size), `${this}: neighbour count`);
    if (labelled.size === 0) assert.equal(r.body.label, null);
    else assert.ok(Object.keys(m.labelCounts()).includes(r.body.label), `${this}: label ${r.body.label}`);
  }
  toString(): string {
    return `Classify(${this.photo}, k=${this.k})`;
  }
}

class Thumbnail extends Cmd {
  constructor(readonly pick: number) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const target = m.pick(this.pick);
    if (!target) return expectError(await s.call('GET', `/api/images/${m.deadId()}/thumbnail`), 404, 'NOT_FOUND', this.toString());
    const res = await fetch(`${s.base}/api/images/${target[1].id}/thumbnail`);
    assert.equal(res.status, 200, `${this}: ${res.status}`);
    assert.equal(res.headers.get('content-type'), 'image/jpeg');
    const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
    assert.equal(meta.format, 'jpeg');
  }
  toString(): string {
    return `Thumbnail(${this.pick})`;
  }
}

class Stats extends Cmd {
  async apply(): Promise<void> {} // the invariants are the stats check
  toString(): string {
    return 'Stats()';
  }
}

class Restart extends Cmd {
  async apply(_m: Model, s: Server): Promise<void> {
    await s.restart();
  }
  toString(): string {
    return 'Restart()';
  }
}

const BAD_REQUESTS = ['unknownId', 'similarBadK', 'searchBadK', 'deleteBadId', 'labelNotJson', 'labelEmpty', 'indexRelative', 'indexMissing', 'unknownJob', 'classifyHead'] as const;
type BadRequestKind = (typeof BAD_REQUESTS)[number];

class BadRequest extends Cmd {
  constructor(readonly kind: BadRequestKind, readonly badK: string) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const id = m.pick(0)?.[1].id ?? 1;
    const what = this.toString();
    switch (this.kind) {
      case 'unknownId':
        return expectError(await s.call('GET', `/api/images/${m.deadId()}`), 404, 'NOT_FOUND', what);
      case 'similarBadK':
        return expectError(await s.call('GET', `/api/images/${id}/similar?k=${this.badK}`), 400, 'INVALID_PARAMETER', what);
      case 'searchBadK':
        return expectError(await s.call('POST', `/api/search?k=${this.badK}`, { form: imageForm(pool[1].bytes) }), 400, 'INVALID_PARAMETER', what);
      case 'deleteBadId':
        return expectError(await s.call('DELETE', '/api/images/abc', { auth: true }), 400, 'INVALID_PARAMETER', what);
      case 'labelNotJson':
        return expectError(await s.call('PUT', `/api/images/${id}/label`, { text: { body: 'label=ants', type: 'text/plain' }, auth: true }), 415, 'UNSUPPORTED_MEDIA_TYPE', what);
      case 'labelEmpty':
        return expectError(await s.call('PUT', `/api/images/${id}/label`, { json: { label: '  ' }, auth: true }), 400, 'INVALID_PARAMETER', what); // checked before the id is looked up
      case 'indexRelative':
        return expectError(await s.call('POST', '/api/index', { json: { paths: ['library'] }, auth: true }), 400, 'INVALID_PARAMETER', what);
      case 'indexMissing':
        return expectError(await s.call('POST', '/api/index', { json: { paths: [path.join(s.dir, 'nope')] }, auth: true }), 404, 'NOT_FOUND', what);
      case 'unknownJob':
        return expectError(await s.call('GET', '/api/index/0123456789abcdef'), 404, 'NOT_FOUND', what);
      case 'classifyHead':
        return expectError(await s.call('POST', '/api/classify?method=head', { form: imageForm(pool[1].bytes) }), 409, 'NO_CLASSIFIER', what);
    }
  }
  toString(): string {
    return `BadRequest(${this.kind}${this.kind.endsWith('BadK') ? `, k=${this.badK}` : ''})`;
  }
}

/** Two uploads of byte-identical photos (0 and its copy) at once, with their labels. */
class TwinUploads extends Cmd {
  constructor(readonly label1: string | undefined, readonly label2: string | undefined, readonly strict = true) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const key = pool[0].key;
    const before = m.live.get(key);
    const send = (photo: number, label: string | undefined): Promise<Reply> =>
      s.call('POST', '/api/images', { form: imageForm(pool[photo].bytes, label === undefined ? {} : { label }), auth: true });
    const [a, b] = await Promise.all([send(0, this.label1), send(TWIN, this.label2)]);
    assert.equal(a.body.id, b.body.id, `${this}: identical bytes got ids ${a.body.id} and ${b.body.id}`);
    const id = a.body.id as number;
    let label: string | null;
    if (before) {
      assert.deepEqual([a.status, b.status], [200, 200], this.toString());
      assert.equal(id, before.id);
      const given = [this.label1, this.label2].filter((l) => l !== undefined);
      // Either order is a possible serial order: the label set last wins.
      const rec = await s.call('GET', `/api/images/${id}`);
      if (given.length === 0) label = before.label;
      else {
        assert.ok(given.includes(rec.body.label), `${this}: label ${rec.body.label}, expected one of ${given}`);
        label = rec.body.label;
      }
    } else {
      assert.deepEqual([a.status, b.status].sort(), [200, 201], `${this}: one upload creates, the other finds it`);
      assert.ok(id > m.maxId);
      m.maxId = id;
      // The serial order is the creator first: the other upload's label (if any) is set after.
      const [creator, finder] = a.status === 201 ? [this.label1, this.label2] : [this.label2, this.label1];
      label = await racingLabel(s, id, finder ?? creator ?? null, creator ?? null, this.strict);
    }
    m.live.set(key, { id, label });
  }
  toString(): string {
    return `TwinUploads(${JSON.stringify(this.label1)}, ${JSON.stringify(this.label2)})`;
  }
}

/**
 * Ids above `maxIdBefore` are the uploads' (`createdBy`: id → content) and a job's new images:
 * contiguous, each content once. The job's are added to the model, unlabelled.
 */
async function adoptNewIds(m: Model, s: Server, maxIdBefore: number, createdBy: Map<number, string>, jobRan: boolean, what: string): Promise<void> {
  let id = maxIdBefore;
  for (;;) {
    const r = await s.call('GET', `/api/images/${id + 1}`);
    if (r.status === 404) break;
    id++;
    const key = r.body.sha256 as string;
    if (createdBy.get(id) === key) continue;
    assert.ok(jobRan && folderKeys.has(key), `${what}: image ${id} (${key.slice(0, 8)}) appeared from nowhere`);
    const cur = m.live.get(key);
    assert.ok(!cur || cur.id === id, `${what}: content ${key.slice(0, 8)} is stored twice, as ${cur?.id} and ${id}`);
    if (!cur) m.live.set(key, { id, label: null });
  }
  for (let j = 2; j <= 4; j++) assert.equal((await s.call('GET', `/api/images/${id + j}`)).status, 404, `${what}: a gap in ids before ${id + j}`);
  m.maxId = Math.max(m.maxId, id);
}

/** An index job cancelled with DELETE /api/index/:jobId after `delayMs`: whatever it added is consistent. */
class CancelJob extends Cmd {
  constructor(readonly delayMs: number) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const maxIdBefore = m.maxId;
    const what = this.toString();
    const r = await s.call('POST', '/api/index', { json: { paths: [s.folder] }, auth: true });
    assert.equal(r.status, 202, `${what}: ${JSON.stringify(r.body)}`);
    if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    const c = await s.call('DELETE', `/api/index/${r.body.jobId}`, { auth: true });
    assert.equal(c.status, 200, `${what}: ${JSON.stringify(c.body)}`);
    const st = await untilFinished(s, r.body.jobId);
    if (st.state === 'done') checkJob(st, what);
    else {
      assert.equal(st.state, 'cancelled', `${what}: ${JSON.stringify(st)}`);
      assert.equal(st.error, null, what);
    }
    await adoptNewIds(m, s, maxIdBefore, new Map(), true, what);
    if (st.state === 'done') for (const k of folderKeys) assert.ok(m.live.has(k), `${what}: the job left folder content ${k.slice(0, 8)} out`);
  }
  toString(): string {
    return `CancelJob(${this.delayMs} ms)`;
  }
}

// ---------------------------------------------------------------------------- bursts of concurrent requests

type Op =
  | { t: 'search'; photo: number; k: number }
  | { t: 'upload'; photo: number; label?: string; afterMs?: number }
  | { t: 'label'; pick: number; label: string | null }
  | { t: 'delete'; pick: number }
  | { t: 'similar'; pick: number }
  | { t: 'stats' }
  | { t: 'index' };

async function untilFinished(s: Server, jobId: string): Promise<any> {
  const deadline = Date.now() + JOB_TIMEOUT_MS;
  for (;;) {
    const r = await s.call('GET', `/api/index/${jobId}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    if (r.body.state !== 'running') return r.body;
    assert.ok(Date.now() < deadline, `job ${jobId} still running after ${JOB_TIMEOUT_MS} ms: ${JSON.stringify(r.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function checkJob(st: any, what: string): void {
  assert.equal(st.state, 'done', `${what}: ${JSON.stringify(st)}`);
  assert.equal(st.error, null, what);
  assert.equal(st.summary.total, FOLDER_FILES, `${what}: total`);
  assert.equal(st.summary.failed, 1, `${what}: the broken file fails, nothing else: ${JSON.stringify(st.summary.errors)}`);
}

/**
 * Requests sent at once (and, `withJob`, under an index job over the folder). Ops whose order
 * would change the outcome (delete vs. upload of the same content, delete of content the job
 * adds...) are left out when planned, so the model's outcome does not depend on timing.
 */
class Burst extends Cmd {
  constructor(readonly withJob: boolean, readonly ops: Op[], readonly strict = true) {
    super();
  }
  async apply(m: Model, s: Server): Promise<void> {
    const before = new Map([...m.live].map(([k, e]) => [k, { ...e }]));
    const liveBefore = m.ids();
    const maxIdBefore = m.maxId;
    const what = this.toString();

    // Plan: decide every op's target now, and drop the ones whose outcome the model cannot
    // tell from the replies (two writes of one label, a label on content being deleted...).
    // Kept on purpose: a delete racing an upload of the same content, or the job adding it.
    const uploaded = new Set<string>();
    const labelled = new Set<string>();
    const deletedKeys = new Set<string>();
    const pinned = new Set<string>(); // similar'd content: not deleted
    type Planned = { op: Op; key?: string; id?: number };
    const planned: Planned[] = [];
    for (const op of this.ops) {
      if (op.t === 'upload') {
        const key = pool[op.photo].key;
        if (uploaded.has(key) || labelled.has(key)) continue;
        uploaded.add(key);
        planned.push({ op, key });
      } else if (op.t === 'label') {
        const t = m.pick(op.pick, (k) => uploaded.has(k) || labelled.has(k) || deletedKeys.has(k));
        if (!t) continue;
        labelled.add(t[0]);
        planned.push({ op, key: t[0], id: t[1].id });
      } else if (op.t === 'delete') {
        const t = m.pick(op.pick, (k) => labelled.has(k) || deletedKeys.has(k) || pinned.has(k));
        if (!t) continue;
        deletedKeys.add(t[0]);
        planned.push({ op, key: t[0], id: t[1].id });
      } else if (op.t === 'similar') {
        const t = m.pick(op.pick, (k) => deletedKeys.has(k));
        if (!t) continue;
        pinned.add(t[0]);
        planned.push({ op, key: t[0], id: t[1].id });
      } else {
        planned.push({ op });
      }
    }

    let jobId: string | undefined;
    if (this.withJob) {
      const r = await s.call('POST', '/api/index', { json: { paths: [s.folder] }, auth: true });
      assert.equal(r.status, 202, `${what}: ${JSON.stringify(r.body)}`);
      jobId = r.body.jobId;
    }
    const replies = await Promise.all(planned.map(async (p): Promise<Reply> => {
      const op = p.op;
      switch (op.t) {
        case 'search':
          return s.call('POST', `/api/search?k=${op.k}`, { form: imageForm(pool[op.photo].bytes) });
        case 'upload':
          if (op.afterMs) await new Promise((resolve) => setTimeout(resolve, op.afterMs));
          return s.call('POST', '/api/images', { form: imageForm(pool[op.photo].bytes, op.label === undefined ? {} : { label: op.label }), auth: true });
        case 'label':
          return s.call('PUT', `/api/images/${p.id}/label`, { json: { label: op.label }, auth: true });
        case 'delete':
          return s.call('DELETE', `/api/images/${p.id}`, { auth: true });
        case 'similar':
          return s.call('GET', `/api/images/${p.id}/similar?k=20`);
        case 'stats':
          return s.call('GET', '/api/stats');
        case 'index':
          return s.call('POST', '/api/index', { json: { paths: [s.folder] }, auth: true });
      }
    }));
    const finals = [];
    if (jobId) finals.push(await untilFinished(s, jobId));
    for (const [i, p] of planned.entries()) {
      if (p.op.t !== 'index') continue;
      const r = replies[i];
      if (r.status === 202) finals.push(await untilFinished(s, r.body.jobId)); // no job was running
      else expectError(r, 409, 'INDEX_JOB_RUNNING', `${what}: a job while another runs`);
    }
    if (planned.some((p) => p.op.t === 'index')) assert.ok(finals.length > 0, `${what}: no index job started`);
    for (const st of finals) checkJob(st, what);
    const jobRan = finals.length > 0;

    // The model after the burst: deletes first (each removed content that was live before), then uploads.
    for (const [i, p] of planned.entries()) {
      if (p.op.t !== 'delete') continue;
      assert.deepEqual({ status: replies[i].status, body: replies[i].body }, { status: 200, body: { removed: p.id } }, `${what}: delete ${p.id}`);
      m.live.delete(p.key!);
      m.dead.push(p.id!);
    }
    const createdBy = new Map<number, string>(); // id → content, of the ids the uploads answered
    for (const [i, p] of planned.entries()) {
      const r = replies[i];
      const op = p.op;
      if (op.t === 'upload') {
        const key = p.key!;
        const prev = before.get(key);
        const racedDelete = deletedKeys.has(key);
        assert.ok(r.status === 200 || r.status === 201, `${what}: upload ${op.photo}: ${JSON.stringify(r.body)}`);
        if (prev && r.body.id === prev.id) {
          assert.equal(r.status, 200, `${what}: upload of live content ${op.photo} found it, so 200`);
          if (racedDelete) continue; // found before the delete took it: gone with it
          m.live.set(key, { id: prev.id, label: op.label ?? prev.label });
          continue;
        }
        // A new id: the content was not live when this upload looked (never, or deleted just before).
        assert.ok(!prev || racedDelete, `${what}: upload of live content ${op.photo} gave id ${r.body.id}, not ${prev?.id}`);
        assert.ok(r.body.id > maxIdBefore, `${what}: upload ${op.photo} got an old id ${r.body.id}`);
        const jobAdds = jobRan && folderKeys.has(key);
        if (!jobAdds) assert.equal(r.status, 201, `${what}: upload of new content ${op.photo}: ${JSON.stringify(r.body)}`);
        createdBy.set(r.body.id, key);
        const label = op.label ?? null;
        const raced = r.status === 200; // the job added it while this upload was embedding it
        m.live.set(key, { id: r.body.id, label: raced ? await racingLabel(s, r.body.id, label, null, this.strict) : label });
      } else if (op.t === 'label') {
        assert.equal(r.status, 200, `${what}: label ${p.id}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.label, op.label);
        m.live.get(p.key!)!.label = op.label;
      }
    }
    await adoptNewIds(m, s, maxIdBefore, createdBy, jobRan, what);
    // Folder content deleted during the job may stay out (read as stored, then gone: the next job adds it).
    if (jobRan) for (const k of folderKeys) assert.ok(m.live.has(k) || deletedKeys.has(k), `${what}: the job left folder content ${k.slice(0, 8)} out`);

    // Reads saw the images before or after the burst, never anything else.
    const either = new Set([...liveBefore, ...m.ids()]);
    const labelAny = (): undefined => undefined; // a label may change under a read
    for (const [i, p] of planned.entries()) {
      const r = replies[i];
      if (p.op.t === 'search') {
        assert.equal(r.status, 200, JSON.stringify(r.body));
        checkResults(r.body.results, either, labelAny, `${what}: search ${p.op.photo}`);
      } else if (p.op.t === 'similar') {
        assert.equal(r.status, 200, `${what}: similar ${p.id}: ${JSON.stringify(r.body)}`);
        const others = new Set(either);
        others.delete(p.id!);
        checkResults(r.body.results, others, labelAny, `${what}: similar ${p.id}`);
      } else if (p.op.t === 'stats') {
        assert.equal(r.status, 200);
      }
    }
  }
  toString(): string {
    return `Burst(${this.withJob ? 'job' : 'no job'}, ${JSON.stringify(this.ops)})`;
  }
}

// ---------------------------------------------------------------------------- arbitraries

const photoArb = fc.integer({ min: 0, max: POOL_SIZE - 1 });
const labelArb = fc.constantFrom(...LABELS);
const maybeLabel = fc.option(labelArb, { nil: undefined });
const pickArb = fc.nat({ max: 20 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('search' as const), photo: photoArb, k: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ t: fc.constant('upload' as const), photo: photoArb, label: maybeLabel, afterMs: fc.constantFrom(0, 5, 10, 20) }, { requiredKeys: ['t', 'photo'] }),
  fc.record({ t: fc.constant('label' as const), pick: pickArb, label: fc.option(labelArb, { nil: null }) }),
  fc.record({ t: fc.constant('delete' as const), pick: pickArb }),
  fc.record({ t: fc.constant('similar' as const), pick: pickArb }),
  fc.constant({ t: 'stats' as const }),
  fc.constant({ t: 'index' as const }),
);

const commandArbs: Array<fc.Arbitrary<fc.AsyncCommand<Model, Server>>> = [
  fc.tuple(photoArb, maybeLabel, fc.constantFrom<UploadVia>('form', 'query', 'raw')).map(([p, l, v]) => new Upload(p, l, v)),
  fc.tuple(photoArb, maybeLabel, fc.constantFrom<UploadVia>('form', 'query', 'raw')).map(([p, l, v]) => new Upload(p, l, v)),
  fc.tuple(fc.constantFrom<BadUpload>('empty', 'corrupt', 'garbage', 'missing', 'badLabel', 'noToken'), fc.constantFrom('images' as const, 'search' as const, 'classify' as const)).map(([k, r]) => new UploadBad(k, r)),
  pickArb.map((p) => new Delete(p)),
  fc.tuple(pickArb, fc.option(labelArb, { nil: null })).map(([p, l]) => new Label(p, l)),
  fc.tuple(photoArb, fc.integer({ min: 1, max: 15 }), fc.option(labelArb, { nil: undefined, freq: 3 }), fc.constantFrom(0, 0, 2)).map(([p, k, l, e]) => new Search(p, k, l, e)),
  fc.tuple(pickArb, fc.integer({ min: 1, max: 15 })).map(([p, k]) => new Similar(p, k)),
  fc.tuple(photoArb, fc.integer({ min: 1, max: 15 })).map(([p, k]) => new Classify(p, k)),
  fc.constant(new Stats()),
  pickArb.map((p) => new Thumbnail(p)),
  fc.constant(new Restart()),
  fc.tuple(fc.constantFrom(...BAD_REQUESTS), fc.constantFrom('0', '-1', 'abc', '1.5', String(MAX_K + 1))).map(([k, bk]) => new BadRequest(k, bk)),
  fc.tuple(maybeLabel, maybeLabel).map(([a, b]) => new TwinUploads(a, b)),
  fc.constantFrom(0, 30, 120).map((d) => new CancelJob(d)),
  fc.array(opArb, { minLength: 1, maxLength: 4 }).map((ops) => new Burst(true, ops)),
  fc.array(opArb, { minLength: 1, maxLength: 4 }).map((ops) => new Burst(true, ops)),
  fc.array(opArb, { minLength: 2, maxLength: 4 }).map((ops) => new Burst(false, ops)),
];

/** Runs commands in order on a fresh empty library, like one run of the property. */
async function runSequence(cmds: Cmd[]): Promise<void> {
  const s = await Server.start();
  try {
    const m = new Model();
    await checkInvariants(m, s, 'start');
    for (const c of cmds) if (c.check(m)) await c.run(m, s);
  } finally {
    await s.stop();
  }
}

// ---------------------------------------------------------------------------- tests

describe('server sequences (issue 21): upload, delete, label, search, index jobs, restarts, at once', () => {
  before(makePool);

  it(`keeps the server up and in agreement with the model (seed ${SEED}, ${NUM_RUNS} runs of up to ${MAX_COMMANDS} commands)`, async () => {
    const started = performance.now();
    let runs = 0;
    counters.commands = 0;
    await fc.assert(
      fc.asyncProperty(fc.commands(commandArbs, { maxCommands: MAX_COMMANDS, size: 'max' }), async (cmds) => {
        runs++;
        const s = await Server.start();
        try {
          await checkInvariants(new Model(), s, 'start');
          await fc.asyncModelRun(() => ({ model: new Model(), real: s }), cmds);
        } finally {
          await s.stop();
        }
      }),
      { seed: SEED, numRuns: NUM_RUNS, endOnFailure: process.env.PIXDEX_SEQ_SHRINK !== '1', includeErrorInReport: true },
    );
    console.log(`# ${runs} runs, ${counters.commands} commands, ${counters.toleratedLostLabels} lost racing labels tolerated, in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  });

  // Minimal sequences, kept as plain cases. On the ann.ts before f0cec95 the first two abort the
  // whole process ("malloc(): unaligned tcache chunk detected", SIGABRT) or fail every later add
  // ("Hnswlib Error: Not enough memory: resizeIndex failed to allocate base layer"): an empty
  // library's snapshot loaded with capacity 0. The property found them in its 3rd run.
  it('issue 21: an empty library restarted, then an index job under concurrent stats', async () => {
    await runSequence([new Stats(), new Restart(), new Stats(), new Burst(true, [{ t: 'stats' }, { t: 'stats' }])]);
  });

  it('issue 21: an empty library restarted, then uploads, search, similar and another restart', async () => {
    await runSequence([new Restart(), new Upload(1, undefined, 'form'), new Search(1, 5, undefined, 0), new Upload(4, 'bees', 'raw'), new Similar(0, 5), new Restart(), new Search(4, 3, 'bees', 2)]);
  });

  it('a library emptied by deletes, restarted, then filled again by upload and index job', async () => {
    await runSequence([new Upload(1, 'ants', 'query'), new Delete(0), new Restart(), new Upload(2, undefined, 'form'), new Burst(true, [{ t: 'search', photo: 3, k: 5 }, { t: 'upload', photo: 7 }]), new Delete(0), new Restart(), new Similar(1, 10), new Classify(7, 5)]);
  });

  it('bad requests on an empty library answer 4xx JSON, and the library stays empty', async () => {
    await runSequence([
      ...(['empty', 'corrupt', 'garbage', 'missing', 'badLabel', 'noToken'] as const).flatMap((k) => (['images', 'search', 'classify'] as const).map((r) => new UploadBad(k, r))),
      ...BAD_REQUESTS.map((k) => new BadRequest(k, '0')),
      new Delete(0), new Label(0, 'ants'), new Similar(0, 3), new Thumbnail(0), new Search(0, 10, 'ants', 2), new Classify(0, 10),
    ]);
  });

  // Found by the property (shrunk from [Label(8, "ants"), Classify(0, k=10), Label(12, "bees"),
  // TwinUploads("bees", "wasps")]). The cause is in src/engine.ts, not server/: `Engine.add` looks
  // the content up before decoding and embedding, so two adds of identical bytes at once both
  // miss it; the second one's `writeBatch` then finds the content inside its transaction, takes
  // the "same content" branch, which records the path as an alias and ignores `p.label`, and
  // `add` returns { created: false } without ever calling `label()` as its early path does. The
  // upload answers 200 with the right id but its label is lost. Same with an upload racing an
  // index job that adds the same file.
  it('two byte-identical uploads at once: the one that finds the other keeps its label', async () => {
    // The race is timing-dependent: six tries (each undone by a delete) nearly always hit it.
    await runSequence(Array.from({ length: 6 }, () => [new TwinUploads('ants', 'bees', true), new Delete(0)]).flat());
  });

  it('an upload racing an index job over the same photo keeps its label', async () => {
    // The upload has to look for its content before the job stores it and store it after: sent
    // at a few delays into the job, one of them nearly always lands in that window.
    const race = (afterMs: number): Burst => new Burst(true, [{ t: 'upload', photo: 2, label: 'bees', afterMs }, { t: 'upload', photo: 3, label: 'ants', afterMs: afterMs + 6 }, { t: 'upload', photo: TWIN, label: 'wasps', afterMs: afterMs + 12 }], true);
    await runSequence([0, 4, 8, 12, 16, 20, 30].flatMap((ms) => [race(ms), new Delete(0), new Delete(0), new Delete(0)]));
  });
});
