/**
 * Every `pixdex` command, declared once: arguments, options (from its verb's schema plus its
 * CLI-only ones), examples and its handler, loaded only when the command runs (so `--help` and
 * `--version` load no model code). `pixdex --help`, `pixdex <command> --help` and the parser all
 * read this table (help.ts, spec.ts).
 */
import { VERBS } from '../src/contracts/verbs.ts';
import { command, type CommandSpec } from './spec.ts';

export const COMMANDS: readonly CommandSpec[] = Object.freeze([
  command({
    name: 'index', args: '<dir|file>...', positionals: [1, Infinity], verb: VERBS.index,
    summary: 'Index images: recursive, incremental (skips unchanged files), resumable',
    details: 'Progress on stderr: "indexed 40/153  12.5 img/s  ETA 0:09  (38 added, 0 updated, 2 skipped, 0 failed)":\n' +
      'added = new images, updated = changed files re-embedded, skipped = unchanged since the last run\n' +
      '(not read again), failed = unreadable or not images (listed at the end). The summary and --json\n' +
      'use the same words. Ctrl-C stops after the current batch; the next run resumes.',
    examples: ['pixdex index ~/Pictures', 'pixdex index ~/Pictures/pets --label-from-folder  # parent folder name becomes the label', 'pixdex index ~/Pictures --watch  # then follow new, changed, moved and deleted files until Ctrl-C'],
    run: async (p) => (await import('./commands/indexing.ts')).index(p),
  }),
  command({
    name: 'search', args: '<image>', positionals: [1, 1], verb: VERBS.search, values: { label: 'LABEL', after: 'DATE', before: 'DATE' },
    options: { 'no-verify': { type: 'boolean', field: 'verify', negates: true, help: 'Visual ranking only: no geometric verification of the candidates (default: verified when the library has local features).' } },
    summary: 'The most similar indexed images to a photo, best first',
    examples: ['pixdex search photo.jpg', 'pixdex search photo.jpg --k 5 --label cats --json', 'pixdex search photo.jpg --after 2024-06-01 --before 2024-09-01  # photos taken last summer'],
    run: async (p) => (await import('./commands/query.ts')).search(p),
  }),
  command({
    name: 'classify', args: '<image>', positionals: [1, 1], verb: VERBS.classify,
    summary: 'A label for a photo: its labelled neighbours\' vote and/or the trained head',
    examples: ['pixdex classify photo.jpg', 'pixdex classify photo.jpg --min-confidence 0.8 --method both'],
    run: async (p) => (await import('./commands/query.ts')).classify(p),
  }),
  command({
    name: 'label', args: '<path|id> <label>|--clear', positionals: [1, 2],
    options: { clear: { type: 'boolean', help: 'Remove the image\'s label (instead of giving one).' } },
    summary: 'Set or (--clear) remove the label of an image',
    examples: ['pixdex label 42 cats', 'pixdex label ~/Pictures/a.jpg "red fox"', 'pixdex label 42 --clear'],
    run: async (p) => (await import('./commands/labels.ts')).label(p),
  }),
  command({
    name: 'label propagate', args: '', positionals: [0, 0], verb: VERBS.propagate,
    options: { 'dry-run': { type: 'boolean', help: 'Report only, save nothing (the default; excludes --apply).' } },
    summary: 'Suggest labels for unlabelled images from their labelled neighbours',
    examples: ['pixdex label propagate --min-confidence 0.8', 'pixdex label propagate --min-confidence 0.8 --apply'],
    run: async (p) => (await import('./commands/labels.ts')).propagate(p),
  }),
  command({
    name: 'label suggestions', args: '', positionals: [0, 0],
    summary: 'List the pending label suggestions',
    examples: ['pixdex label suggestions', 'pixdex label suggestions --json'],
    run: async (p) => (await import('./commands/labels.ts')).suggestions(p),
  }),
  ...(['accept', 'reject'] as const).map((verb) => command({
    name: `label ${verb}`, args: '<id|path>...', positionals: [0, Infinity],
    options: { all: { type: 'boolean', help: `${verb === 'accept' ? 'Accept' : 'Reject'} every pending suggestion.` } },
    summary: verb === 'accept' ? 'Accept suggestions: each becomes the image\'s label' : 'Reject suggestions: never suggested again for that image',
    examples: [`pixdex label ${verb} 42 43`, `pixdex label ${verb} --all`],
    run: async (p) => (await import('./commands/labels.ts')).decide(p),
  })),
  command({
    name: 'train-classifier', args: '', positionals: [0, 0], verb: VERBS['train-classifier'],
    summary: 'Train the classifier on the labelled images: the softmax head, or --mode finetune (used by classify\'s head and both methods)',
    options: { 'no-refit': { type: 'boolean', field: 'refit', negates: true, help: 'finetune: keep the first run\'s best weights; no second run on every labelled image (default: refit).' } },
    examples: ['pixdex train-classifier --hidden 64', 'pixdex train-classifier --mode finetune --backend tensorflow', 'pixdex train-classifier --mode finetune --blocks 0'],
    run: async (p) => (await import('./commands/training.ts')).trainClassifier(p),
  }),
  command({
    name: 'train', args: '', positionals: [0, 0], verb: VERBS.train,
    summary: 'Train the library\'s autoencoder and switch search to its compact embeddings',
    examples: ['pixdex train', 'pixdex train --dim 128 --epochs 20'],
    run: async (p) => (await import('./commands/training.ts')).train(p),
  }),
  command({
    name: 'remove', args: '<path|id>', positionals: [1, 1],
    summary: 'Remove an image (with every path that shows it) from the library; the file stays',
    examples: ['pixdex remove 42', 'pixdex remove ~/Pictures/old.jpg'],
    run: async (p) => (await import('./commands/library.ts')).remove(p),
  }),
  command({
    name: 'stats', args: '', positionals: [0, 0],
    summary: 'Images, labels, suggestions, classifier, backbone, space, backend, index, store',
    examples: ['pixdex stats', 'pixdex stats --json --data ~/pixdex-library'],
    run: async (p) => (await import('./commands/library.ts')).stats(p),
  }),
  command({
    name: 'eval', args: '<dataset-dir>', positionals: [0, 1], verb: VERBS.eval, values: { queries: 'DIR', references: 'DIR' },
    options: { backgrounds: { type: 'string', value: 'DATASET', help: 'A folder-per-class dataset of more clutter photos for the instance queries.' } },
    summary: 'Quality figures: category and instance retrieval on a dataset, or real query photos',
    details: 'pixdex eval <dataset-dir>: a folder per class; category retrieval (P@1, P@10, mAP), kNN accuracy\n' +
      'and instance retrieval on generated re-photographs (--instance, --seed, --backgrounds, --space;\n' +
      '--descriptor names the descriptor to evaluate).\n' +
      'pixdex eval --queries DIR --references DIR: the same object in real photos. The references are\n' +
      'indexed (into a temporary library, or the --data library when given), each query is searched with\n' +
      'and without geometric verification: P@1, R@5, p50/p90 latency. A query pairs with the reference of\n' +
      'the same file name; queries without one are listed and skipped (--workers).',
    examples: ['pixdex eval $PIXDEX_DATASETS/hymenoptera_data/val', 'pixdex eval --queries smvs/book_covers/query --references smvs/book_covers/reference'],
    run: async (p) => (await import('./commands/evaluate.ts')).evaluate(p),
  }),
  command({
    name: 'duplicates', args: '', positionals: [0, 0], verb: VERBS.duplicates,
    summary: 'Groups of copies, edits and bursts, best copy first',
    details: 'exact: the same bytes under several paths; near (default): the same picture resized, re-saved,\n' +
      'cropped (up to ~20 %), colour-edited, watermarked or in another format; similar: the same scene\n' +
      'moments apart (bursts, a step to the side; includes near copies). Best copy first: most pixels,\n' +
      'then the oldest file. pixdex never deletes files: `pixdex remove <path|id>` takes a copy out of\n' +
      'the library only.',
    examples: ['pixdex duplicates', 'pixdex duplicates --kind exact --json', 'pixdex duplicates --kind similar --threshold 0.9'],
    run: async (p) => (await import('./duplicates.ts')).duplicates(p),
  }),
  command({
    name: 'check', args: '', positionals: [0, 0],
    options: { repair: { type: 'boolean', help: 'Drop orphans and duplicates, rewrite lookups and label counts, rebuild the index from the vectors and save a fresh snapshot (stop other pixdex processes first); images without a vector are removed: index their folder again to re-add them.' } },
    summary: 'Verify the store and its index (writes nothing without --repair)',
    details: 'Checks: no duplicate paths or contents, every image with its vector and every vector with its\n' +
      'image, lookups and label counts right, ids below meta.nextId, and the HNSW index (as loaded from\n' +
      'its snapshot and journal) holding exactly the stored images. Exit code 0 when no problem remains,\n' +
      '5 when some do. --json: {"ok", "images", "vectors", "paths", "labels", "index", "problems", "counts"}\n' +
      '(with --repair: {"before", "fixed", "after"}).',
    examples: ['pixdex check', 'pixdex check --repair'],
    run: async (p) => (await import('./check.ts')).check(p),
  }),
  command({
    name: 'migrate', args: '', positionals: [0, 0],
    options: {
      from: { type: 'string', value: 'DIR|URL', help: 'The library to copy: a data folder or a postgres:// URL (it is only read).' },
      to: { type: 'string', value: 'DIR|URL', help: 'Where to copy it: an empty data folder or PostgreSQL database (a postgres:// URL).' },
    },
    summary: 'Copy a library between an LMDB folder and PostgreSQL (either way), then check both',
    details: 'Copies images, paths, vectors, labels, suggestions, models (classifier, autoencoder, vocabulary),\n' +
      'local features, duplicate evidence, settings and the index snapshot, then runs `pixdex check` on\n' +
      'both. Exit code 0 when both are clean and agree, 5 otherwise. Stop writers to the source first.',
    examples: ['pixdex migrate --from ./data --to postgres://pixdex:secret@db:5432/pixdex', 'pixdex migrate --from postgres://pixdex@db/pixdex --to ./data-copy'],
    run: async (p) => (await import('./migrate.ts')).migrate(p),
  }),
  command({
    name: 'serve', args: '', positionals: [0, 0],
    options: {
      host: { type: 'string', value: 'HOST', help: 'Interface to bind (default: 127.0.0.1, env PIXDEX_HOST).' },
      port: { type: 'string', value: 'N', help: 'TCP port, 0 = any free one (default: 8080, env PIXDEX_PORT).' },
      token: { type: 'string', value: 'TOKEN', help: 'Bearer token required on mutating routes (env PIXDEX_TOKEN, preferred: a flag is visible to other users in ps).' },
      'max-upload-mb': { type: 'string', value: 'N', help: 'Largest upload in MiB (default: 25).' },
      watch: { type: 'string', value: 'DIR', multiple: true, help: 'Keep the library in step with DIR (repeatable): new, changed, moved and deleted files are indexed within seconds, each pass an index job (GET /api/index).' },
    },
    summary: 'The HTTP API and the web page (GET /openapi.json lists the routes)',
    examples: ['pixdex serve', 'PIXDEX_TOKEN=secret pixdex serve --host 0.0.0.0 --port 8080', 'pixdex serve --watch ~/Pictures  # index new photos as they arrive'],
    run: async (p) => (await import('./serve.ts')).serve(p),
  }),
  command({
    name: 'models', args: '<list|fetch|verify|import> [ID...|FILE.tflite]', positionals: [1, Infinity],
    options: {
      name: { type: 'string', value: 'N', help: 'import: the backbone id to register the model as.' },
      'feature-node': { type: 'string', value: 'X', help: 'import: a 4-d node [1, h, w, c] to describe images by (default: the input of the model\'s last global pooling).' },
      'input-range': { type: 'string', value: 'LO,HI', help: 'import: the pixel range the model expects (default: from its input quantization, else -1,1).' },
    },
    summary: 'The backbones: list, fetch, verify, or import your own TFLite model',
    details: 'list: built-in and imported backbones, installed or not, where, how big. fetch [ID...]: download\n' +
      'built-in backbones now (default: all). verify [ID...]: re-check installed ones byte for byte.\n' +
      'import FILE.tflite --name N: convert a TFLite image model (uint8 or float; conv, depthwise conv,\n' +
      'pooling, add, mul, mean, pad, fully connected, reshape, softmax, relu/relu6/logistic) and register\n' +
      'it as backbone N. Models folder: --models DIR or PIXDEX_MODELS, else ~/.cache/pixdex/models\n' +
      '(PIXDEX_CACHE_DIR moves the cache), where missing built-in backbones are downloaded on first use,\n' +
      'checked against pinned SHA-256 digests; PIXDEX_MODELS_MIRROR=URL downloads from a mirror.',
    examples: ['pixdex models list', 'pixdex models fetch mobilenet_v2', 'pixdex models import my.tflite --name my-net  # then: pixdex index DIR --backbone my-net --data NEW'],
    run: async (p) => (await import('./models.ts')).models(p),
  }),
]);

/** The command `argv` starts with (a two-word subcommand first), and the arguments after its name. */
export function findCommand(argv: readonly string[]): { spec: CommandSpec; rest: string[] } | undefined {
  const two = COMMANDS.find((c) => c.name === `${argv[0]} ${argv[1]}`);
  if (two) return { spec: two, rest: argv.slice(2) };
  const one = COMMANDS.find((c) => c.name === argv[0]);
  return one ? { spec: one, rest: argv.slice(1) } : undefined;
}
