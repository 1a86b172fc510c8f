/**
 * The shape DESIGN.md fixes, checked on the sources: (a) no import cycles among src/, indexer/,
 * server/, cli/ and bench/ (type-only imports count: dpdm with transform off); (b) the engine stays
 * a thin façade (src/engine.ts ≤ 300 lines) and no module under src/ grows past 500 lines;
 * (c) LMDB is touched only by the records module, src/store/: no other file imports 'lmdb', opens
 * a sub-database, or reaches into a store's sub-databases (`store.images.get(...)` and the like).
 * Needs no model; every failure lists what it found.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { parseCircular, parseDependencyTree } from 'dpdm';
import { REPO } from './fixtures.ts';

/** Folders whose modules must not import each other in a circle (those that exist). */
const LAYERS = ['src', 'indexer', 'server', 'cli', 'bench'];
/** Folders of product and tooling code checked for database access (test/ may use LMDB directly). */
const CODE_DIRS = ['src', 'indexer', 'server', 'cli', 'bench', 'scripts', 'bin'];
const CODE_EXT = /\.(ts|mts|cts|js|mjs|cjs)$/;
const ENGINE_MAX_LINES = 300;
const MODULE_MAX_LINES = 500;
/** The records module: the only code that opens or uses LMDB. */
const RECORDS = 'src/store/';
/** The store's LMDB sub-databases (DESIGN.md Storage) reached as `<store>.<name>.<member>`. */
const SUB_DATABASES = new Set(['images', 'paths', 'hashes', 'vectors', 'scales', 'codes', 'codes2', 'models', 'journal', 'suggestions', 'ann']);
/** `labels` is also the name of many maps and methods: only `<store>.labels.get` counts. */
const LABELS_MEMBERS = new Set(['get']);
/** A receiver that names a store: `store`, `this.store`, `engine.store`, `lmdbStore`, `records`, `db`. */
const STORE_RECEIVER = /^_?(store|records|db|lmdb)$|[a-z0-9](Store|Records)$/;

/** Code files under `dir` (relative to the repo, posix separators), node_modules and public assets aside. */
function codeFiles(dir: string): string[] {
  const root = path.join(REPO, dir);
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && CODE_EXT.test(e.name))
    .map((e) => path.relative(REPO, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .filter((f) => !f.includes('node_modules/') && !f.startsWith('server/public/'))
    .sort();
}

function lineCount(file: string): number {
  const text = fs.readFileSync(path.join(REPO, file), 'utf8');
  return text === '' ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

/** The last name of a receiver expression: `this.store` → store, `engine.store` → store, `db` → db. */
function receiverName(node: ts.Expression): string | undefined {
  if (ts.isIdentifier(node)) return node.text;
  if (ts.isPropertyAccessExpression(node)) return node.name.text;
  if (ts.isNonNullExpression(node) || ts.isParenthesizedExpression(node)) return receiverName(node.expression);
  return undefined;
}

function isLmdb(specifier: string): boolean {
  return specifier === 'lmdb' || specifier.startsWith('lmdb/');
}

/** Where `file` uses LMDB: imports of 'lmdb', `openDB(...)`, and `<store>.<sub-database>.<member>`. */
function lmdbUses(file: string): string[] {
  const text = fs.readFileSync(path.join(REPO, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('x') ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
  const found: string[] = [];
  const report = (node: ts.Node, what: string) => {
    const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
    found.push(`${file}:${line + 1}: ${what}: ${text.split('\n')[line].trim()}`);
  };
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier) && isLmdb(node.moduleSpecifier.text)) {
      report(node, "imports 'lmdb'");
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression) && isLmdb(node.moduleReference.expression.text)) {
      report(node, "imports 'lmdb'");
    } else if (ts.isCallExpression(node)) {
      const [arg] = node.arguments;
      const dynamic = node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require');
      if (dynamic && arg && ts.isStringLiteralLike(arg) && isLmdb(arg.text)) report(node, "imports 'lmdb'");
      if (ts.isPropertyAccessExpression(node.expression) && node.expression.name.text === 'openDB') report(node, 'opens an LMDB sub-database');
    } else if (ts.isPropertyAccessExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
      const member = node.name.text;
      const database = node.expression.name.text;
      const receiver = receiverName(node.expression.expression);
      const named = SUB_DATABASES.has(database) || (database === 'labels' && LABELS_MEMBERS.has(member));
      if (named && receiver !== undefined && STORE_RECEIVER.test(receiver)) report(node, `uses the store's '${database}' sub-database`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('architecture (DESIGN.md: modules)', () => {
  it(`has no import cycles among ${LAYERS.join('/, ')}/ (type imports included)`, async () => {
    const entries = LAYERS.filter((d) => fs.existsSync(path.join(REPO, d))).map((d) => `${d}/**/*.{ts,mts,mjs,js}`);
    const tree = await parseDependencyTree(entries, {
      cwd: REPO,
      context: REPO,
      tsconfig: path.join(REPO, 'tsconfig.json'),
      transform: false, // keep `import type`: a cycle of types is a cycle of concepts
      skipDynamicImports: false,
      exclude: /node_modules|server\/public\//,
      onProgress: () => undefined,
    });
    const modules = Object.keys(tree).filter((f) => LAYERS.some((d) => f.startsWith(`${d}/`)));
    assert.ok(modules.length > 20, `dpdm found only ${modules.length} modules: ${modules.join(', ')}`);
    const cycles = parseCircular(tree, false);
    assert.equal(cycles.length, 0, `${cycles.length} import cycle(s):\n${cycles.map((c) => `  ${[...c, c[0]].join(' -> ')}`).join('\n')}`);
  });

  it(`keeps src/engine.ts within ${ENGINE_MAX_LINES} lines and every module under src/ within ${MODULE_MAX_LINES}`, () => {
    const engine = lineCount('src/engine.ts');
    const large = codeFiles('src').map((f) => ({ f, n: lineCount(f) })).filter(({ f, n }) => f !== 'src/engine.ts' && n > MODULE_MAX_LINES);
    const problems = [
      ...(engine > ENGINE_MAX_LINES ? [`src/engine.ts: ${engine} lines (at most ${ENGINE_MAX_LINES}: a façade that wires modules and owns no algorithm)`] : []),
      ...large.map(({ f, n }) => `${f}: ${n} lines (at most ${MODULE_MAX_LINES})`),
    ];
    assert.deepEqual(problems, [], `modules over their size:\n  ${problems.join('\n  ')}`);
  });

  it(`opens and uses LMDB only in ${RECORDS} (the records module)`, () => {
    assert.ok(fs.existsSync(path.join(REPO, RECORDS)), `${RECORDS} does not exist: the records module is still elsewhere`);
    const files = CODE_DIRS.flatMap(codeFiles).filter((f) => !f.startsWith(RECORDS));
    assert.ok(files.length > 20, `only ${files.length} files scanned`);
    const offenders = files.flatMap(lmdbUses);
    assert.deepEqual(offenders, [], `LMDB used outside ${RECORDS} (${offenders.length}):\n  ${offenders.join('\n  ')}`);
  });
});
