/**
 * The contracts (src/contracts/): one table of error codes that the CLI and the server both
 * derive from, and one schema per verb whose defaults and limits nothing else repeats. No model
 * is loaded: the sources are read as text and the mappings called directly.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERRORS, ERROR_CODES, EXIT, isErrorCode, type ErrorCode } from '../src/contracts/errors.ts';
import { PixdexError } from '../src/errors.ts';
import { exitCodeFor, exitCodeForCode } from '../cli/exit.ts';
import { STATUS_BY_CODE, toHttpFailure } from '../server/errors.ts';
import { openApiDocument } from '../server/openapi.ts';
import { DEFAULT_HEAD_OPTIONS } from '../src/models/head.ts';
import { DEFAULT_K, DEFAULT_PROPAGATE_MIN_CONFIDENCE, HEAD_EPOCHS, HEAD_HIDDEN, HEAD_PATIENCE, MAX_EXPAND, MAX_K, TRAIN_DIM, TRAIN_EPOCHS, TRAIN_SAMPLE } from '../src/contracts/limits.ts';
import { VERBS, imageId, parseParam, parseParams } from '../src/contracts/verbs.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Source files of a folder, recursively (TypeScript and ESM JavaScript), as [relative path, text]. */
function sources(dir: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(rel));
    else if (/\.(ts|mjs)$/.test(e.name)) out.push([rel, fs.readFileSync(path.join(ROOT, rel), 'utf8')]);
  }
  return out;
}

/** Every match of group 1 of `re` in `text`. */
function all(re: RegExp, text: string): string[] {
  return [...text.matchAll(re)].map((m) => m[1]);
}

/**
 * The codes a source emits: thrown typed errors (`new XError('CODE'`, `super('CODE'`), error
 * objects and worker messages (`code: 'CODE'`), the BadImageError reasons, multer's mapping
 * (`['CODE', 'message']`), code constants (`JOB_RUNNING = 'CODE'`) and stderr lines
 * (`pixdex: CODE:` and `'CODE'` on a line that writes one).
 */
function emittedCodes(text: string): string[] {
  const C = `([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,})`;
  return [
    ...all(new RegExp(`new \\w*Error\\(\\s*'${C}'`, 'g'), text),
    ...all(new RegExp(`super\\(\\s*'${C}'`, 'g'), text),
    ...all(new RegExp(`\\bcode: '${C}'`, 'g'), text),
    ...all(new RegExp(`\\? m\\.code : '${C}'`, 'g'), text),
    ...all(new RegExp(`^\\s*\\| '${C}'`, 'gm'), text).filter(() => /BadImageReason =/.test(text)),
    ...all(new RegExp(`\\['${C}', ['\`]`, 'g'), text),
    ...all(new RegExp(`export const [A-Z_]+ = '${C}';`, 'g'), text),
    ...all(new RegExp(`pixdex: ${C}: `, 'g'), text),
    ...text.split('\n').filter((l) => l.includes('pixdex: ')).flatMap((l) => all(new RegExp(`\\?\\? '${C}'`, 'g'), l)),
  ];
}

describe('error codes: one table', () => {
  const files = ['src', 'indexer', 'cli', 'server'].flatMap(sources).filter(([rel]) => !rel.startsWith(path.join('src', 'contracts')));

  it('has every code thrown or written in src/, indexer/, cli/ and server/', () => {
    const found = new Map<string, string>();
    for (const [rel, text] of files) for (const code of emittedCodes(text)) found.set(code, found.get(code) ?? rel);
    // the grep itself must see the known kinds of emitter, or it proves nothing
    for (const code of ['NOT_FOUND', 'EMPTY_IMAGE', 'STORE_CONFLICT', 'WORKER_FAILED', 'UPLOAD_TOO_LARGE', 'INDEX_JOB_RUNNING', 'USAGE', 'LISTEN_FAILED', 'INDEX_FAILED', 'STORE_INCONSISTENT', 'ROUTE_NOT_FOUND']) {
      assert.ok(found.has(code), `the source scan no longer finds ${code}`);
    }
    const missing = [...found].filter(([code]) => !isErrorCode(code)).map(([code, rel]) => `${code} (${rel})`);
    assert.deepEqual(missing, [], 'codes emitted but not in src/contracts/errors.ts');
  });

  it('has no code nothing emits', () => {
    const text = files.map(([, t]) => t).join('\n');
    const unused = ERROR_CODES.filter((code) => !text.includes(`'${code}'`) && !text.includes(`pixdex: ${code}:`));
    assert.deepEqual(unused, []);
  });

  it('has the codes the tests expect', () => {
    // test/helpers/ is left out: the sequence driver has its own marker for a crash (UNEXPECTED)
    const text = sources('test').filter(([rel]) => rel.endsWith('.test.ts') && !rel.endsWith('contracts.test.ts')).map(([, t]) => t).join('\n');
    const expected = new Set([
      ...all(/assertError\([^;]*?, \d{3}, '([A-Z_]+)'/g, text),
      ...all(/expectError\([^;]*?, \d{3}, '([A-Z_]+)'/g, text),
      ...all(/\^pixdex: ([A-Z_]+):/g, text),
      ...all(/code: '([A-Z_]+)', message/g, text),
    ]);
    assert.ok(expected.size >= 8, [...expected].join(', '));
    assert.deepEqual([...expected].filter((c) => !isErrorCode(c)), []);
  });

  it('gives each code an exit code of EXIT, a 4xx/5xx status and a one-line meaning', () => {
    const exits = new Set<number>(Object.values(EXIT));
    for (const code of ERROR_CODES) {
      const { exit, status, meaning }: { exit: number; status: number; meaning: string } = ERRORS[code];
      assert.ok(exits.has(exit) && exit !== EXIT.ok && exit !== EXIT.interrupted, `${code}: exit ${exit}`);
      assert.ok(Number.isInteger(status) && status >= 400 && status <= 599, `${code}: status ${status}`);
      assert.ok(meaning.length > 10 && !meaning.includes('\n'), `${code}: meaning`);
    }
  });

  it('is what the CLI exits with (cli/exit.ts)', () => {
    for (const code of ERROR_CODES) {
      assert.equal(exitCodeForCode(code), ERRORS[code].exit, code);
      assert.equal(exitCodeFor(new PixdexError(code, 'x')), ERRORS[code].exit, code);
    }
    assert.equal(exitCodeForCode('NOT_A_CODE'), undefined);
    assert.equal(exitCodeFor(new Error('x')), EXIT.failure);
    assert.equal(exitCodeFor(Object.assign(new Error('x'), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' })), EXIT.usage);
  });

  it('is what the server answers (server/errors.ts)', () => {
    assert.deepEqual(Object.keys(STATUS_BY_CODE).sort(), [...ERROR_CODES].sort());
    for (const code of ERROR_CODES) {
      const f = toHttpFailure(new PixdexError(code, 'the message'), { maxUploadBytes: 1 });
      assert.deepEqual(f, { status: ERRORS[code].status, code, message: 'the message', unexpected: ERRORS[code].status === 500 }, code);
    }
    // a code cast past the type, and anything else unexpected, is an opaque 500
    assert.equal(toHttpFailure(new PixdexError('NOPE' as ErrorCode, 'x'), { maxUploadBytes: 1 }).code, 'INTERNAL');
    assert.equal(toHttpFailure(new TypeError('x'), { maxUploadBytes: 1 }).status, 500);
  });

  it('maps the store states a request can meet to 409, 503 or 500, not a blanket 500', () => {
    assert.equal(ERRORS.STORE_MISMATCH.status, 409);
    assert.equal(ERRORS.STORE_CONFLICT.status, 409);
    assert.equal(ERRORS.NO_CLASSIFIER.status, 409);
    assert.equal(ERRORS.MODEL_NOT_FOUND.status, 503);
    assert.equal(ERRORS.SNAPSHOT_UNUSABLE.status, 500);
    assert.equal(ERRORS.STORE_INCONSISTENT.status, 500);
  });
});

describe('verbs: one schema each, defaults and limits in one place', () => {
  it('fills in the defaults of src/contracts/limits.ts', () => {
    assert.deepEqual(parseParams(VERBS.search, {}), { k: DEFAULT_K, expand: 0, verify: true });
    assert.deepEqual(parseParams(VERBS.classify, {}), { k: DEFAULT_K, minConfidence: 0, method: 'knn' });
    assert.deepEqual(parseParams(VERBS.propagate, {}), { k: DEFAULT_K, minConfidence: DEFAULT_PROPAGATE_MIN_CONFIDENCE, apply: false });
    assert.deepEqual(parseParams(VERBS.train, {}), { dim: TRAIN_DIM.default, epochs: TRAIN_EPOCHS.default, sample: TRAIN_SAMPLE.default });
    // epochs and patience default by mode (head: the limits' defaults, through DEFAULT_HEAD_OPTIONS; finetune/scratch: FINETUNE_*_DEFAULT).
    assert.deepEqual(parseParams(VERBS['train-classifier'], {}), { mode: 'head', hidden: HEAD_HIDDEN.default });
    assert.deepEqual([DEFAULT_HEAD_OPTIONS.epochs, DEFAULT_HEAD_OPTIONS.patience], [HEAD_EPOCHS.default, HEAD_PATIENCE.default]);
    assert.deepEqual(parseParams(VERBS.index, {}), { labelFromFolder: false });
  });

  it('takes strings as the CLI and query strings give them, and trims labels', () => {
    assert.deepEqual(parseParams(VERBS.search, { k: '5', expand: '2', label: ' bees ', space: 'backbone' }), { k: 5, expand: 2, label: 'bees', space: 'backbone', verify: true });
    assert.deepEqual(parseParams(VERBS.propagate, { minConfidence: '0.5', apply: 'true' }), { k: DEFAULT_K, minConfidence: 0.5, apply: true });
    assert.deepEqual(parseParams(VERBS.label, { label: null }), { label: null });
    assert.equal(parseParam(imageId, 'id', '4294967295'), 4294967295);
  });

  it('refuses a bad value with INVALID_PARAMETER naming the parameter, the rule and the value', () => {
    const refuses = (f: () => unknown, message: RegExp): void => {
      assert.throws(f, (err: unknown) => err instanceof PixdexError && err.code === 'INVALID_PARAMETER' && message.test(err.message));
    };
    for (const k of ['0', String(MAX_K + 1), 'abc', '2.5', '1e3', '', ['1', '2']]) {
      refuses(() => parseParams(VERBS.search, { k }), new RegExp(`^Expected integer between 1 and ${MAX_K} for k but received `));
    }
    refuses(() => parseParams(VERBS.search, { expand: String(MAX_EXPAND + 1) }), /for expand but received "11" of type string/);
    refuses(() => parseParams(VERBS.classify, { minConfidence: '2' }, { names: 'cli' }), /^Expected number between 0 and 1 for min-confidence but received "2"/);
    refuses(() => parseParams(VERBS.classify, { method: 'vote' }), /^Expected knn, head or both for method but received "vote"/);
    refuses(() => parseParams(VERBS.search, { space: 'x' }), /^Expected backbone or autoencoder for space/);
    refuses(() => parseParams(VERBS.propagate, { apply: 'yes' }), /^Expected true or false for apply/);
    refuses(() => parseParams(VERBS.label, { label: 'a\u0007b' }), /printable characters or null for label/);
    refuses(() => parseParams(VERBS.label, {}), /for label but received undefined/);
    refuses(() => parseParams(VERBS.train, { dim: '4' }), new RegExp(`between ${TRAIN_DIM.min} and ${TRAIN_DIM.max} for dim`));
    refuses(() => parseParams(VERBS['index-job'], ['/x'], { body: 'a JSON object' }), /^Expected a JSON object for body/);
    refuses(() => parseParams(VERBS['index-job'], { paths: [] }), /an array of 1 to 64 absolute paths for paths/);
    refuses(() => parseParams(VERBS['index-job'], { paths: ['/a', 'photos/cats'] }), /absolute paths.* for paths but received "photos\/cats"/);
    refuses(() => parseParam(imageId, 'id', '0'), /^Expected a positive integer image id for id/);
  });

  it('is what the OpenAPI document describes', () => {
    const doc = openApiDocument({ maxUploadBytes: 1000, thumbnailSize: 256, version: '0' }) as any;
    const param = (route: string, method: string, name: string) => doc.paths[route][method].parameters.find((p: { name: string }) => p.name === name);
    assert.deepEqual(param('/api/search', 'post', 'k').schema, { default: DEFAULT_K, type: 'integer', minimum: 1, maximum: MAX_K });
    assert.deepEqual(param('/api/images/{id}/similar', 'get', 'expand').schema, { default: 0, type: 'integer', minimum: 0, maximum: MAX_EXPAND });
    assert.equal(param('/api/suggestions/propagate', 'post', 'minConfidence').schema.default, DEFAULT_PROPAGATE_MIN_CONFIDENCE);
    assert.deepEqual(param('/api/classify', 'post', 'method').schema.enum, ['knn', 'head', 'both']);
    assert.equal(param('/api/search', 'post', 'k').required, false);
    assert.equal(doc.paths['/api/index'].post.requestBody.content['application/json'].schema.properties.paths.maxItems, 64);
    assert.deepEqual(doc.components.schemas.Error.properties.error.properties.code.enum, [...ERROR_CODES]);
    // every error response sits at the status the table gives its codes
    for (const [route, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const [status, r] of Object.entries(op.responses as Record<string, any>)) {
          for (const code of r['x-error-codes'] ?? []) assert.equal(String(ERRORS[code as ErrorCode].status), status, `${method} ${route} ${code}`);
        }
        assert.ok(op.responses['500'] || route === '/healthz' || route === '/openapi.json', `${method} ${route} documents 500`);
      }
    }
    assert.equal(doc.paths['/api/classify'].post.responses['409']['x-error-codes'].includes('NO_CLASSIFIER'), true);
  });

  it('keeps the numbers out of the modules that use them', () => {
    const code = ['src', 'indexer', 'cli', 'server'].flatMap(sources)
      .filter(([rel]) => !rel.startsWith(path.join('src', 'contracts')))
      .flatMap(([rel, text]) => text.split('\n').map((line, i) => [`${rel}:${i + 1}`, line] as const))
      .filter(([, line]) => !/^\s*(\*|\/\/|\/\*\*)/.test(line));
    const literal = /(intParam|numberParam)\('(k|expand|minConfidence|min-confidence|dim|epochs|sample|hidden|patience)', [^)]*\b(10|1000|0\.8|256|30|4096|200)\b|\?\? (10|0\.8)\b|default: '(10|0\.8|256|30|1000|200)'/;
    assert.deepEqual(code.filter(([, line]) => literal.test(line)).map(([where]) => where), []);
  });
});
