/**
 * Exit codes scripts can trust (issue 21), the CLI run as a child process: a missing input or
 * query file is NOT_FOUND (3), an index run where nothing could be indexed is not a success, a
 * read-only command on a folder without a library fails and creates nothing, and a reader that
 * goes away (`| head`) ends the command quietly. One model load in all (the partial-success run).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, HYM_VAL, MODELS, imagesIn, tempDir } from './fixtures.ts';

function pixdex(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, PIXDEX_MODELS: MODELS } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs the CLI with stdout piped into a reader that goes away: at once (`closeAt: 'start'`), or
 * after the first chunk (`'first-chunk'`, like `| head -c 1`). Resolves with the exit code and stderr.
 */
function pixdexIntoClosedPipe(args: string[], closeAt: 'start' | 'first-chunk'): Promise<{ code: number | null; signal: string | null; stderr: string; got: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, PIXDEX_MODELS: MODELS }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let got = 0;
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    if (closeAt === 'start') {
      child.stdout!.destroy();
    } else {
      child.stdout!.once('data', (d: Buffer) => {
        got = d.length;
        child.stdout!.destroy();
      });
    }
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr, got }));
  });
}

/** Files and folders under `dir`, relative, sorted (to show nothing was created). */
function listing(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true }).map(String).sort();
}

describe('pixdex exit codes (issue 21)', () => {
  const tmp = tempDir();
  const photo = imagesIn(HYM_VAL)[0];
  const data = path.join(tmp.dir, 'data'); // a library with one image (partial-success run)
  const photos = path.join(tmp.dir, 'photos'); // two photos
  const mixed = path.join(tmp.dir, 'mixed'); // one photo, two bad files
  const bad = path.join(tmp.dir, 'bad'); // bad files only, two kinds
  const empties = path.join(tmp.dir, 'empties'); // empty files only
  const many = path.join(tmp.dir, 'many'); // the photo and 600 empty files with long names: a long report

  before(() => {
    for (const dir of [photos, mixed, bad, empties, many]) fs.mkdirSync(dir);
    fs.copyFileSync(photo, path.join(photos, 'a.jpg'));
    fs.copyFileSync(imagesIn(HYM_VAL)[1], path.join(photos, 'b.jpg'));
    fs.copyFileSync(photo, path.join(mixed, 'photo.jpg'));
    fs.writeFileSync(path.join(mixed, 'empty.jpg'), '');
    fs.writeFileSync(path.join(mixed, 'notes.jpg'), 'not an image');
    fs.writeFileSync(path.join(bad, 'empty.jpg'), '');
    fs.writeFileSync(path.join(bad, 'notes.jpg'), 'not an image');
    fs.writeFileSync(path.join(empties, 'a.jpg'), '');
    fs.writeFileSync(path.join(empties, 'b.jpg'), '');
    fs.copyFileSync(photo, path.join(many, 'photo.jpg'));
    for (let i = 0; i < 600; i++) fs.writeFileSync(path.join(many, `empty-${String(i).padStart(4, '0')}-${'x'.repeat(120)}.jpg`), '');
  });
  after(() => tmp.cleanup());

  it('index of a folder that does not exist: NOT_FOUND (3) naming it, and no library created', () => {
    const missing = path.join(tmp.dir, 'no-such-folder');
    const lib = path.join(tmp.dir, 'never-created');
    const r = pixdex(['index', missing, '--data', lib]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^pixdex: NOT_FOUND: .*no-such-folder/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.ok(!fs.existsSync(lib), 'no library folder created');
    // One missing input among existing ones fails the same way, before anything is indexed.
    assert.equal(pixdex(['index', bad, missing, '--data', lib]).code, 3);
    assert.ok(!fs.existsSync(lib));
  });

  it('index where every file fails: the summary first, then the failures\' shared code', () => {
    const lib = path.join(tmp.dir, 'data-nomodel');
    const nowhere = path.join(tmp.dir, 'no-models');
    const r = pixdex(['index', photos, '--data', lib, '--models', nowhere, '--workers', '1']);
    assert.equal(r.code, 5, r.stderr); // MODEL_NOT_FOUND, shared by every failure
    assert.match(r.stdout, /^0 added, 0 updated, 0 skipped, 2 failed, 0 removed of 2 files/);
    assert.match(r.stdout, /failed: .*a\.jpg: MODEL_NOT_FOUND/);
    assert.match(r.stderr, /^pixdex: MODEL_NOT_FOUND: none of the inputs could be indexed: 2 failed/m);

    const json = pixdex(['index', photos, '--data', lib, '--models', nowhere, '--workers', '1', '--json']);
    assert.equal(json.code, 5, json.stderr);
    const s = JSON.parse(json.stdout); // the --json summary is printed all the same
    assert.equal(s.failed, 2);
    assert.equal(s.added + s.updated + s.skipped, 0);
    assert.ok(s.errors.every((e: { error: string }) => e.error.startsWith('MODEL_NOT_FOUND: ')));

    const allEmpty = pixdex(['index', empties, '--data', lib, '--workers', '1']);
    assert.equal(allEmpty.code, 4, allEmpty.stderr); // EMPTY_IMAGE, shared
    assert.match(allEmpty.stderr, /^pixdex: EMPTY_IMAGE: none of the inputs could be indexed: 2 failed/m);
    assert.match(allEmpty.stdout, /2 failed/);

    const twoKinds = pixdex(['index', bad, '--data', lib, '--workers', '1']);
    assert.equal(twoKinds.code, 4, twoKinds.stderr); // EMPTY_IMAGE and UNSUPPORTED_IMAGE: bad input
    assert.match(twoKinds.stderr, /^pixdex: INDEX_FAILED: .*EMPTY_IMAGE 1, UNSUPPORTED_IMAGE 1/m);
  });

  it('index where some files succeed and some fail: exit 0, the report lists the failures', () => {
    const r = pixdex(['index', mixed, '--data', data, '--workers', '1', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.added, 1);
    assert.equal(s.failed, 2);
    assert.deepEqual(s.errors.map((e: { error: string }) => e.error.split(':')[0]).sort(), ['EMPTY_IMAGE', 'UNSUPPORTED_IMAGE']);
    // Again: the photo is unchanged (skipped), the bad files fail again: still a success.
    assert.equal(pixdex(['index', mixed, '--data', data, '--workers', '1']).code, 0);
  });

  it('a query file that does not exist: NOT_FOUND (3) naming it, for search and classify', () => {
    const missing = path.join(tmp.dir, 'nothere.jpg');
    for (const command of ['search', 'classify']) {
      const r = pixdex([command, missing, '--data', data]);
      assert.equal(r.code, 3, `${command}: ${r.stderr}`);
      assert.match(r.stderr, /^pixdex: NOT_FOUND: .*nothere\.jpg/);
    }
  });

  it('read-only commands on a folder without a library: NOT_FOUND (3) naming it, nothing created', () => {
    const typo = path.join(tmp.dir, 'dta');
    const emptyDir = path.join(tmp.dir, 'empty-folder');
    fs.mkdirSync(emptyDir);
    const readOnly = [
      ['stats'], ['search', photo], ['classify', photo], ['check'], ['label', 'suggestions'], ['label', 'propagate'],
      ['label', 'accept', '--all'], ['label', '1', 'ants'], ['remove', '1'], ['train-classifier'],
    ];
    for (const [i, args] of readOnly.entries()) {
      for (const dir of i < 4 ? [typo, emptyDir] : [typo]) {
        const r = pixdex([...args, '--data', dir]);
        assert.equal(r.code, 3, `${args.join(' ')} --data ${dir}: ${r.stderr}`);
        assert.match(r.stderr, /^pixdex: NOT_FOUND: .*(No pixdex library in|No store in) .*(dta|empty-folder).*pixdex index <folder> --data/, args.join(' '));
      }
      assert.ok(!fs.existsSync(typo), `${args.join(' ')} created ${typo}`);
      assert.deepEqual(listing(emptyDir), [], `${args.join(' ')} wrote into an empty folder`);
    }
  });

  it('a reader that goes away ends every command quietly: exit 0, no stack trace', async () => {
    for (const args of [['--help'], ['stats', '--data', data], ['label', 'suggestions', '--data', data], ['stats', '--data', data, '--json']]) {
      const r = await pixdexIntoClosedPipe(args, 'start');
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /EPIPE|Error|at /, args.join(' '));
    }
    // A long report (~250 KB, more than a pipe holds), its reader gone after the first bytes:
    // like `pixdex index DIR --json | head -c 1`. The photo is indexed, the empty files fail: exit 0.
    const r = await pixdexIntoClosedPipe(['index', many, '--data', data, '--workers', '1', '--json'], 'first-chunk');
    assert.ok(r.got > 0);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /EPIPE|Error|    at /);
  });
});
