/**
 * The CLI at the terminal (issue 23), run as a child process: `pixdex <command> --help` prints
 * that command's own usage, options and examples (not another command's), `pixdex help <command>`
 * the same, `--version` the version of package.json, and an unknown option or a wrong number of
 * arguments one line `pixdex: USAGE: ...` with exit code 2. No model is loaded.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { COMMANDS } from '../cli/commands.ts';
import { commandHelp } from '../cli/help.ts';
import { command, optionsOf, parseCommand } from '../cli/spec.ts';
import { VERBS } from '../src/contracts/verbs.ts';
import { CLI, REPO } from './fixtures.ts';

function pixdex(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Each command's own options, written out here (not read from the code): help must show at least these. */
const OWN: Record<string, string[]> = {
  index: ['--label-from-folder', '--workers', '--watch'],
  search: ['--k', '--label', '--after', '--before', '--space', '--expand', '--no-verify'],
  classify: ['--k', '--min-confidence', '--method', '--space'],
  label: ['--clear'],
  'label propagate': ['--k', '--min-confidence', '--apply', '--dry-run'],
  'label suggestions': [],
  'label accept': ['--all'],
  'label reject': ['--all'],
  'train-classifier': ['--mode', '--blocks', '--hidden', '--epochs', '--patience'],
  train: ['--dim', '--epochs', '--sample'],
  remove: [],
  stats: [],
  eval: ['--space', '--instance', '--seed', '--backgrounds', '--queries', '--references', '--workers'],
  duplicates: ['--kind', '--threshold'],
  check: ['--repair'],
  migrate: ['--from', '--to'],
  serve: ['--host', '--port', '--token', '--max-upload-mb', '--watch'],
  models: ['--name', '--feature-node', '--input-range'],
};

/** `--name` as a whole option in `text` (not `--label` inside `--label-from-folder`). */
const mentions = (text: string, option: string): boolean => new RegExp(`${option}(?![\\w-])`).test(text);

describe('pixdex <command> --help (issue 23)', () => {
  it('covers every command', () => {
    assert.deepEqual(COMMANDS.map((c) => c.name).sort(), Object.keys(OWN).sort());
  });

  for (const spec of COMMANDS) {
    it(`${spec.name} --help: its usage line, its own options with their descriptions, examples, and no other command's options`, () => {
      const r = pixdex([...spec.name.split(' '), '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const help = r.stdout;
      assert.ok(help.startsWith(`Usage: pixdex ${spec.name} `), help.split('\n')[0]);
      for (const option of OWN[spec.name]) assert.ok(mentions(help, option), `${spec.name} --help lacks ${option}`);
      const options = optionsOf(spec);
      for (const [name, o] of Object.entries(options)) {
        // each option on its own line, with (the start of) its description beside or under it
        assert.match(help, new RegExp(`^ {2}--${name}\\b.*(\\n {20,}.*)*`, 'm'), `--${name}`);
        assert.ok(o.help.length > 10 && help.replace(/\s+/g, ' ').includes(o.help.replace(/\s+/g, ' ')), `${spec.name} --${name}: description ${JSON.stringify(o.help)}`);
      }
      const others = new Set(COMMANDS.filter((c) => c !== spec).flatMap((c) => Object.keys(optionsOf(c))));
      for (const name of others) {
        if (!(name in options)) assert.ok(!mentions(help, `--${name}`), `${spec.name} --help shows --${name}, another command's option`);
      }
      const examples = help.slice(help.indexOf('\nExamples:\n')).split('\n').filter((l) => l.startsWith('  pixdex '));
      assert.ok(examples.length >= 1 && examples.length <= 3, `${spec.name}: ${examples.length} examples`);
      for (const e of examples) assert.ok(e.startsWith(`  pixdex ${spec.name}`) || spec.name === 'serve', e);
    });
  }

  it('a field added to a verb\'s schema is parsed, passed on and documented with no other change', () => {
    const verb = VERBS.search.extend({ takenAfter: z.string().optional().describe('Only photos taken after this date (YYYY-MM-DD).') });
    const spec = command({ name: 'search', args: '<image>', positionals: [1, 1], verb, summary: 'Search', examples: ['pixdex search a.jpg'], run: async () => 0 });
    const help = commandHelp(spec);
    assert.match(help, /^ {2}--taken-after TAKEN-AFTER +Only photos taken after this date \(YYYY-MM-DD\)\.$/m);
    const { params } = parseCommand(spec, ['a.jpg', '--taken-after', '2024-05-01', '--k', '3']);
    assert.equal(params.takenAfter, '2024-05-01');
    assert.equal(params.k, 3);
  });

  it('pixdex help <command> prints the same as <command> --help; -h too', () => {
    for (const name of ['search', 'label propagate', 'serve']) {
      const a = pixdex([...name.split(' '), '--help']).stdout;
      assert.equal(pixdex(['help', ...name.split(' ')]).stdout, a, name);
      assert.equal(pixdex([...name.split(' '), '-h']).stdout, a, name);
    }
    // help wins over everything else on the line, arguments missing or not
    assert.equal(pixdex(['index', '--help']).code, 0);
    assert.equal(pixdex(['search', 'photo.jpg', '--k', '0', '--help']).code, 0);
  });

  it('pixdex --help lists every command and the global options', () => {
    const r = pixdex(['--help']);
    assert.equal(r.code, 0);
    for (const spec of COMMANDS) assert.match(r.stdout, new RegExp(`^ {2}${spec.name}\\b`, 'm'), spec.name);
    for (const option of ['--data', '--store', '--models', '--backbone', '--descriptor', '--local-features', '--backend', '--json']) assert.ok(mentions(r.stdout, option), option);
    assert.equal(pixdex(['help']).stdout, r.stdout);
    const bare = pixdex([]);
    assert.equal(bare.code, 2, 'no command is a usage error');
    assert.equal(bare.stdout, r.stdout);
  });
});

describe('pixdex --version (issue 23)', () => {
  it('prints the version of package.json, as --version and -v', () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    for (const flag of ['--version', '-v']) {
      const r = pixdex([flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${version}\n`);
    }
  });
});

describe('bad usage: one line `pixdex: USAGE: ...`, exit code 2 (issue 23)', () => {
  const cases: [string[], RegExp][] = [
    [['search', 'photo.jpg', '--frob'], /^pixdex: USAGE: pixdex search has no option --frob\. Run `pixdex search --help` for usage\.\n$/],
    [['search', 'photo.jpg', '--lable', 'x'], /^pixdex: USAGE: pixdex search has no option --lable \(did you mean --label\?\)/],
    [['label', 'propagate', '--appply'], /^pixdex: USAGE: pixdex label propagate has no option --appply \(did you mean --apply\?\).*`pixdex label propagate --help`/],
    [['stats', '--repair'], /^pixdex: USAGE: pixdex stats has no option --repair/],
    [['search', 'photo.jpg', '--k'], /^pixdex: USAGE: pixdex search: Option '--k <value>' argument missing/],
    [['search', 'photo.jpg', '--json=yes'], /^pixdex: USAGE: pixdex search: .*--json.*does not take an argument/],
    [['stats', 'extra'], /^pixdex: USAGE: pixdex stats takes no arguments but received 1: "extra"/],
    [['search'], /^pixdex: USAGE: pixdex search takes 1 argument\(s\) \(<image>\) but received 0/],
    [['label', '42'], /^pixdex: USAGE: pixdex label takes <path\|id> and a label \(or --clear/],
    [['label', '42', ''], /^pixdex: USAGE: An empty label does not clear one: use `pixdex label <path\|id> --clear`/],
    [['label', '42', 'cats', '--clear'], /^pixdex: USAGE: pixdex label <path\|id> --clear takes no label/],
    [['label', 'accept'], /^pixdex: USAGE: pixdex label accept takes image ids \(or --all\)/],
    [['models'], /^pixdex: USAGE: pixdex models takes at least 1 argument/],
    [['frobnicate'], /^pixdex: USAGE: Unknown command "frobnicate"; expected one of index, search, .*models/],
    [['help', 'frobnicate'], /^pixdex: USAGE: Unknown command "frobnicate"/],
  ];
  for (const [args, message] of cases) {
    it(`pixdex ${args.map((a) => a || '""').join(' ')}`, () => {
      const r = pixdex(args);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, message);
      assert.equal(r.stderr.split('\n').length, 2, `one line: ${JSON.stringify(r.stderr)}`);
      assert.ok(r.stderr.endsWith('\n'));
    });
  }
});
