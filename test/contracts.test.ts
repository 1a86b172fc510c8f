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
import { exitCodeFor, exitCodeForCode } from '../indexer/exit.ts';
import { STATUS_BY_CODE, toHttpFailure } from '../server/errors.ts';

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
  const files = ['src', 'indexer', 'server'].flatMap(sources).filter(([rel]) => !rel.startsWith(path.join('src', 'contracts')));

  it('has every code thrown or written in src/, indexer/ and server/', () => {
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

  it('is what the CLI exits with (indexer/exit.ts)', () => {
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
