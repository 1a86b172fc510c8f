/**
 * Capture metadata (issue 19): real photos (hymenoptera train) get EXIF dates, cameras, GPS and an
 * orientation written by sharp, are indexed through embedding worker threads, and read back; the
 * `after`/`before` filters return only images in range for search and similar, through the
 * engine, HTTP and the CLI; `stats` shows the range. A photo without EXIF and one whose EXIF block
 * is corrupt index like any other, without a date.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { createApp } from '../server/app.ts';
import { Engine } from '../src/engine.ts';
import { exifDate, instantOf } from '../src/dates.ts';
import { readMetadata } from '../src/image/metadata.ts';
import { CLI, HYM_TRAIN, engineOptions, imagesIn, tempDir } from './fixtures.ts';

/** A photo the test writes: its source, and the EXIF it gets (none: stripped). */
interface Photo {
  name: string;
  exif?: Record<string, Record<string, string>>;
  orientation?: number;
  corrupt?: boolean;
  /** What `takenAt` must read back as. */
  takenAt?: string;
}

/** Eight dated photos, one a month of 2020 at 10:00 by the camera's clock; the first says it was UTC+2. */
const DATED: Photo[] = Array.from({ length: 8 }, (_, i) => {
  const month = String(i + 1).padStart(2, '0');
  const offset = i === 0 ? '+02:00' : undefined;
  return {
    name: `dated-${month}.jpg`,
    exif: {
      IFD0: { Make: 'TestMaker', Model: `Model ${i}` },
      IFD2: { DateTimeOriginal: `2020:${month}:10 10:00:00`, ...(offset ? { OffsetTimeOriginal: offset } : {}) },
      ...(i === 1 ? { IFD3: { GPSLatitudeRef: 'S', GPSLatitude: '33/1 52/1 0/1', GPSLongitudeRef: 'E', GPSLongitude: '151/1 12/1 30/1' } } : {}),
    },
    orientation: i === 2 ? 6 : undefined,
    takenAt: `2020-${month}-10T10:00:00${offset ?? ''}`,
  };
});
const PHOTOS: Photo[] = [
  ...DATED,
  { name: 'digitized-only.jpg', exif: { IFD2: { DateTimeDigitized: '2019:12:31 23:00:00' } }, takenAt: '2019-12-31T23:00:00' },
  { name: 'no-exif.jpg' },
  { name: 'corrupt-exif.jpg', exif: { IFD0: { Make: 'Broken' }, IFD2: { DateTimeOriginal: '2020:05:05 05:05:05' } }, corrupt: true },
];

/** Writes `p` from a real photo; a corrupt one gets its EXIF IFD offset pointed outside the file. */
async function writePhoto(dir: string, source: string, p: Photo): Promise<string> {
  let img = sharp(source);
  if (p.orientation) img = img.withMetadata({ orientation: p.orientation });
  if (p.exif) img = img.withExif(p.exif);
  const bytes = await img.jpeg({ quality: 90 }).toBuffer();
  if (p.corrupt) {
    const at = bytes.indexOf(Buffer.from('Exif\0\0'));
    assert.ok(at > 0, 'the corrupt photo has an EXIF block to break');
    bytes.fill(0xff, at + 10, at + 14); // TIFF header's IFD0 offset: 0xffffffff
  }
  const file = path.join(dir, p.name);
  fs.writeFileSync(file, bytes);
  return file;
}

describe('capture metadata and date filters', () => {
  const tmp = tempDir('pixdex-meta-');
  const photos = path.join(tmp.dir, 'photos');
  const dataDir = path.join(tmp.dir, 'data');
  const files = new Map<string, string>();
  const ids = new Map<string, number>();
  let engine: Engine;

  before(async () => {
    fs.mkdirSync(photos);
    const sources = imagesIn(HYM_TRAIN).filter((_, i) => i % 20 === 0);
    for (const [i, p] of PHOTOS.entries()) files.set(p.name, await writePhoto(photos, sources[i], p));
    // Small batches, two workers: the metadata is read in the embedding worker threads.
    engine = await Engine.open({ ...engineOptions(dataDir), batchSize: 4, workers: 2 });
    const warnings: string[] = [];
    const summary = await engine.index([photos], { onWarning: (w) => warnings.push(w) });
    assert.deepEqual(warnings, [], 'the embedding workers started');
    assert.equal(summary.failed, 0, JSON.stringify(summary.errors));
    assert.equal(summary.added, PHOTOS.length);
    for (const [name, file] of files) ids.set(name, engine.records.idOfPath(file)!);
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  const record = (name: string) => engine.records.get(ids.get(name)!)!;
  /** Names of the photos taken in [from, to) by their expected `takenAt`. */
  const inRange = (from: string | undefined, to: string | undefined, except?: string): string[] =>
    PHOTOS.filter((p) => p.takenAt && p.name !== except && (from === undefined || instantOf(p.takenAt)! >= instantOf(from)!) && (to === undefined || instantOf(p.takenAt)! < instantOf(to)!)).map((p) => p.name).sort();
  const namesOf = (results: Array<{ id: number }>): string[] => results.map((r) => [...ids].find(([, id]) => id === r.id)![0]).sort();

  it('reads the capture date, camera, GPS and orientation once at indexing', async () => {
    for (const p of PHOTOS) assert.equal(record(p.name).takenAt, p.takenAt, p.name);
    assert.deepEqual(record('dated-01.jpg').camera, { make: 'TestMaker', model: 'Model 0' });
    const gps = record('dated-02.jpg').gps!;
    assert.ok(Math.abs(gps.lat - -(33 + 52 / 60)) < 1e-6 && Math.abs(gps.lon - (151 + 12 / 60 + 30 / 3600)) < 1e-6, JSON.stringify(gps));
    assert.equal(record('dated-01.jpg').gps, undefined);
    const turned = record('dated-03.jpg');
    assert.equal(turned.orientation, 6);
    const stored = await sharp(files.get('dated-03.jpg')!).metadata();
    assert.deepEqual([turned.width, turned.height], [stored.height, stored.width], 'orientation 6: the record has the upright size');
    assert.equal(record('dated-04.jpg').orientation, 1);
  });

  it('indexes a photo without EXIF and one with a corrupt EXIF block, without a date', async () => {
    for (const name of ['no-exif.jpg', 'corrupt-exif.jpg']) {
      const rec = record(name);
      assert.equal(rec.takenAt, undefined, name);
      assert.equal(rec.metadata, 1, `${name}: its metadata was read (there is none)`);
      assert.ok(engine.records.vector(ids.get(name)!), `${name} is embedded`);
    }
    assert.deepEqual(await readMetadata(fs.readFileSync(files.get('no-exif.jpg')!)), {});
    assert.deepEqual(await readMetadata(Buffer.from('not an image at all')), {});
    assert.deepEqual(await readMetadata(new Uint8Array(0)), {});
  });

  it('search and similar return only images in range, k of them when that many match', async () => {
    const query = fs.readFileSync(files.get('no-exif.jpg')!);
    const ranges: Array<[string | undefined, string | undefined]> = [['2020-03-01', '2020-06-01'], ['2020-06-10T10:00', undefined], [undefined, '2020-02-10T10:00:00Z'], ['2019-01-01', '2030-01-01']];
    for (const [from, to] of ranges) {
      const expected = inRange(from, to);
      const found = await engine.search(query, { k: 20, after: from, before: to });
      assert.deepEqual(namesOf(found), expected, `search ${from}..${to}`);
      for (const r of found) assert.equal(r.takenAt, record(namesOf([r])[0]).takenAt);
      const similar = engine.similar(ids.get('dated-04.jpg')!, { k: 20, after: from, before: to });
      assert.deepEqual(namesOf(similar), inRange(from, to, 'dated-04.jpg'), `similar ${from}..${to}`);
    }
    // k results still come back: the filter is applied inside the ANN search.
    const two = await engine.search(query, { k: 2, after: '2020-04-01' });
    assert.equal(two.length, 2);
    for (const name of namesOf(two)) assert.ok(inRange('2020-04-01', undefined).includes(name), name);
    // Unfiltered, the undated photos are found too; filtered, never.
    assert.ok(namesOf(await engine.search(query, { k: 20 })).includes('corrupt-exif.jpg'));
  });

  it('compares a photo by its UTC offset when it has one, and an offset-less time as UTC; after inclusive, before exclusive', async () => {
    const names = async (o: { after?: string; before?: string }) => namesOf(engine.similar(ids.get('no-exif.jpg')!, { k: 20, ...o }));
    // dated-01 was taken at 10:00 UTC+2, 08:00 UTC.
    assert.ok((await names({ before: '2020-01-10T08:30Z' })).includes('dated-01.jpg'));
    assert.ok(!(await names({ after: '2020-01-10T08:30Z' })).includes('dated-01.jpg'));
    assert.ok((await names({ after: '2020-01-10T10:00+02:00' })).includes('dated-01.jpg'));
    // dated-02 says 10:00 and no offset: 10:00 UTC.
    assert.ok((await names({ after: '2020-02-10T10:00:00' })).includes('dated-02.jpg'));
    assert.ok(!(await names({ before: '2020-02-10T10:00:00' })).includes('dated-02.jpg'));
    assert.ok((await names({ before: '2020-02-10T10:00:01' })).includes('dated-02.jpg'));
  });

  it('refuses a bound that is not a date, and an empty range, naming the parameter', async () => {
    const id = ids.get('dated-01.jpg')!;
    assert.throws(() => engine.similar(id, { after: '2020-02-30' }), { code: 'INVALID_PARAMETER', message: /for after but received "2020-02-30"/ });
    assert.throws(() => engine.similar(id, { before: 'yesterday' }), { code: 'INVALID_PARAMETER', message: /ISO 8601 date or date-time .*for before but received "yesterday"/ });
    assert.throws(() => engine.similar(id, { after: '2021-01-01', before: '2020-01-01' }), { code: 'INVALID_PARAMETER', message: /earlier than before/ });
  });

  it('stats shows the date range and how many images are dated', async () => {
    const s = await engine.stats();
    assert.deepEqual(s.dates, { earliest: '2019-12-31T23:00:00', latest: '2020-08-10T10:00:00', dated: 9 });
  });

  it('a record from before metadata gets it at the next index run, without re-embedding', async () => {
    const id = ids.get('dated-05.jpg')!;
    const { store } = engine.records;
    const { takenAt: _t, camera: _c, metadata: _m, ...old } = record('dated-05.jpg');
    store.write(() => store.images.putSync(id, old));
    const vector = engine.records.vector(id)!;
    const metadataSeq = engine.records.meta().metadataSeq ?? 0;
    const summary = await engine.index([photos]);
    assert.deepEqual({ added: summary.added, updated: summary.updated, failed: summary.failed }, { added: 0, updated: 0, failed: 0 });
    assert.equal(record('dated-05.jpg').takenAt, '2020-05-10T10:00:00');
    assert.deepEqual(record('dated-05.jpg').camera, { make: 'TestMaker', model: 'Model 4' });
    assert.deepEqual(engine.records.vector(id), vector);
    assert.equal(engine.records.meta().metadataSeq, metadataSeq + 1, 'in-memory date caches are told to rebuild');
    assert.ok(namesOf(engine.similar(ids.get('dated-04.jpg')!, { k: 20, after: '2020-05-01', before: '2020-06-01' })).includes('dated-05.jpg'));
    const check = engine.check();
    assert.ok(check.ok, JSON.stringify(check));
  });

  it('over HTTP: after/before on search and similar, takenAt on results, metadata on the image, stats', async () => {
    const app = createApp(engine, { log: () => {} });
    const server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const id = ids.get('dated-04.jpg')!;
      const similar = await (await fetch(`${base}/api/images/${id}/similar?k=20&after=2020-03-01&before=2020-06-01`)).json();
      assert.deepEqual(namesOf(similar.results), inRange('2020-03-01', '2020-06-01', 'dated-04.jpg'));
      for (const r of similar.results) assert.match(r.takenAt, /^2020-0[35]-10T10:00:00$/);
      const form = new FormData();
      form.append('image', new Blob([fs.readFileSync(files.get('no-exif.jpg')!)], { type: 'image/jpeg' }), 'q.jpg');
      const search = await (await fetch(`${base}/api/search?k=20&before=2020-03-01`, { method: 'POST', body: form })).json();
      assert.deepEqual(namesOf(search.results), inRange(undefined, '2020-03-01'));
      const bad = await fetch(`${base}/api/images/${id}/similar?after=last-week`);
      assert.equal(bad.status, 400);
      assert.equal((await bad.json()).error.code, 'INVALID_PARAMETER');
      // Browse by date: newest first, undated last; a window keeps only the dated images in it.
      const byDate = await (await fetch(`${base}/api/images?order=taken&limit=500`)).json();
      assert.equal(byDate.total, ids.size);
      const instants = byDate.images.map((i: { takenAt?: string }) => (i.takenAt ? instantOf(i.takenAt)! : NaN));
      const withDate = instants.filter((t: number) => !Number.isNaN(t));
      assert.deepEqual(withDate, [...withDate].sort((a: number, b: number) => b - a), 'newest first');
      assert.ok(withDate.length >= 9 && instants.slice(withDate.length).every((t: number) => Number.isNaN(t)), 'undated images last');
      const page2 = await (await fetch(`${base}/api/images?order=taken&limit=3&offset=3`)).json();
      assert.deepEqual(page2.images.map((i: { id: number }) => i.id), byDate.images.slice(3, 6).map((i: { id: number }) => i.id));
      const spring = await (await fetch(`${base}/api/images?after=2020-03-01&before=2020-06-01`)).json();
      assert.deepEqual(namesOf(spring.images), inRange('2020-03-01', '2020-06-01'));
      assert.equal(spring.total, inRange('2020-03-01', '2020-06-01').length);
      const empty = await fetch(`${base}/api/images?after=2020-06-01&before=2020-03-01`);
      assert.equal(empty.status, 400);
      assert.equal((await empty.json()).error.code, 'INVALID_PARAMETER');
      const image = await (await fetch(`${base}/api/images/${ids.get('dated-02.jpg')}`)).json();
      assert.equal(image.takenAt, '2020-02-10T10:00:00');
      assert.deepEqual(image.camera, { make: 'TestMaker', model: 'Model 1' });
      assert.ok(Math.abs(image.gps.lat + 33.8667) < 1e-3, JSON.stringify(image.gps));
      // An upload reads its metadata too (POST /api/images).
      const upload = new FormData();
      const dated = await sharp(files.get('no-exif.jpg')!).resize(200).withExif({ IFD2: { DateTimeOriginal: '2018:07:01 12:00:00', OffsetTimeOriginal: '-05:00' } }).jpeg().toBuffer();
      upload.append('image', new Blob([new Uint8Array(dated)], { type: 'image/jpeg' }), 'u.jpg');
      const created = await (await fetch(`${base}/api/images`, { method: 'POST', body: upload })).json();
      assert.equal((await (await fetch(`${base}/api/images/${created.id}`)).json()).takenAt, '2018-07-01T12:00:00-05:00');
      const stats = await (await fetch(`${base}/api/stats`)).json();
      assert.deepEqual(stats.dates, { earliest: '2018-07-01T12:00:00-05:00', latest: '2020-08-10T10:00:00', dated: 10 });
      assert.ok((await fetch(`${base}/api/images/${created.id}`, { method: 'DELETE' })).ok);
      assert.equal((await (await fetch(`${base}/api/stats`)).json()).dates.dated, 9, 'a removed image leaves the range');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('on the command line: search --after/--before, the date in text output, stats', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args, '--data', dataDir], { encoding: 'utf8' });
    const query = files.get('no-exif.jpg')!;
    const json = run('search', query, '--k', '20', '--after', '2020-07-01', '--json');
    assert.equal(json.status, 0, json.stderr);
    assert.deepEqual(namesOf(JSON.parse(json.stdout).results), inRange('2020-07-01', undefined));
    const text = run('search', query, '--k', '3', '--before', '2020-01-01');
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /digitized-only\.jpg .*taken 2019-12-31T23:00:00/);
    const bad = run('search', query, '--after', '2020-1-1');
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /Expected ISO 8601 date or date-time .*for after but received "2020-1-1"/);
    const stats = run('stats');
    assert.equal(stats.status, 0, stats.stderr);
    assert.match(stats.stdout, /^dates +2019-12-31T23:00:00 … 2020-08-10T10:00:00 \(9 of 11 images dated\)$/m);
  });
});

describe('EXIF dates as ISO 8601 (pure)', () => {
  it('turns EXIF dates into ISO 8601, with a valid offset only, and refuses dates that are not', () => {
    assert.equal(exifDate('2021:06:05 14:30:00', '+02:00'), '2021-06-05T14:30:00+02:00');
    assert.equal(exifDate('2021:06:05 14:30:00', undefined), '2021-06-05T14:30:00');
    assert.equal(exifDate('2021:06:05 14:30:00', '+25:00'), '2021-06-05T14:30:00');
    for (const bad of ['0000:00:00 00:00:00', '2021:02:30 10:00:00', '    :  :     :  :  ', '', 20210605]) assert.equal(exifDate(bad, undefined), undefined, String(bad));
  });

  it('reads ISO bounds as instants: a date is its midnight, no offset is UTC', () => {
    assert.equal(instantOf('2021-06-05'), Date.UTC(2021, 5, 5));
    assert.equal(instantOf('2021-06-05T14:30'), Date.UTC(2021, 5, 5, 14, 30));
    assert.equal(instantOf('2021-06-05T14:30:00.250Z'), Date.UTC(2021, 5, 5, 14, 30, 0, 250));
    assert.equal(instantOf('2021-06-05T14:30:00+02:00'), Date.UTC(2021, 5, 5, 12, 30));
    assert.equal(instantOf('2021-06-05T14:30:00-05:30'), Date.UTC(2021, 5, 5, 20, 0));
    for (const bad of ['2021-6-5', '2021-06-31', '2021-06-05T24:00', '05/06/2021', 'now', '2021-06-05Z', '']) assert.equal(instantOf(bad), undefined, bad);
  });
});
