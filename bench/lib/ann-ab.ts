/**
 * `bench:ann --ab ARMS`: several hnswlib-node builds (and saved graphs) in one process, queried in
 * interleaved batches, so that the load of a shared machine hits every arm alike and the ratios
 * hold even when the absolute QPS do not (issue 22).
 *
 * An arm is `BUILD[@GRAPH]`: BUILD is `portable` (the install step's `addon-portable.node`),
 * `native` (`addon.node`, whatever the install step left there) or the path of an addon file;
 * GRAPH a graph saved by `bench:ann --save-index` over the same vectors (default: the graph of this
 * run). Each arm loads its own copy of the graph. For each ef, every arm answers the same queries,
 * `batch` at a time, the arms' order rotating every batch, `rounds` times; QPS counts wall time
 * and this process's CPU time (less sensitive to other load). `atRecall` interpolates each arm's
 * QPS at a recall (log QPS linear in recall between the two ef around it) and its ratio to the
 * first arm.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { recallAgainstExact } from '../../src/classify.ts';

const require = createRequire(import.meta.url);

interface Index {
  readIndexSync(file: string, allowReplaceDeleted?: boolean): void;
  setEf(ef: number): void;
  searchKnn(q: number[], k: number): { neighbors: number[] };
}

export interface AbArm {
  name: string;
  addon: string;
  graph: string;
}

export interface AbRow {
  ef: number;
  load1: number;
  arms: Record<string, { recall: number; qpsWall: number; qpsCpu: number }>;
}

/** The addon file of `build` (portable, native, or a path). */
function addonFile(build: string): string {
  const release = path.join(path.dirname(require.resolve('hnswlib-node/package.json')), 'build', 'Release');
  const file = build === 'portable' ? path.join(release, 'addon-portable.node') : build === 'native' ? path.join(release, 'addon.node') : path.resolve(build);
  if (!fs.existsSync(file)) throw new Error(`--ab: ${build}: no addon at ${file}${build === 'portable' ? ' (the install step keeps the portable copy there: npm run postinstall)' : ''}`);
  return file;
}

/** Parses `--ab` (comma-separated `BUILD[@GRAPH]`); `graph` is the run's own graph file. */
export function parseArms(spec: string, graph: string): AbArm[] {
  const arms = spec.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const at = s.indexOf('@');
    const build = at < 0 ? s : s.slice(0, at);
    const file = at < 0 ? graph : path.resolve(s.slice(at + 1));
    if (!fs.existsSync(file)) throw new Error(`--ab: ${s}: no graph at ${file}`);
    return { name: s, addon: addonFile(build), graph: file };
  });
  if (arms.length === 0) throw new Error('--ab: name at least one arm (portable, native, an addon path; @GRAPH optional)');
  return arms;
}

/** Runs the interleaved sweep; `exact` holds the 1-based ids bench:ann's graphs use. */
export function runAb(arms: AbArm[], dims: number, queries: Float32Array, exact: number[][], k: number, efs: number[], batch: number, rounds: number, log: (s: string) => void): { rows: AbRow[]; atRecall: Record<string, Record<string, { ef: number; qpsWall: number; qpsCpu: number; ratioWall: number; ratioCpu: number } | null>> } {
  const nq = exact.length;
  const qs = Array.from({ length: nq }, (_, i) => Array.from(queries.subarray(i * dims, (i + 1) * dims)));
  const loaded = arms.map((arm) => {
    const { HierarchicalNSW } = require(arm.addon) as { HierarchicalNSW: new (space: string, dims: number) => Index };
    const index = new HierarchicalNSW('cosine', dims);
    const t = performance.now();
    index.readIndexSync(arm.graph, true);
    log(`--ab ${arm.name}: ${arm.addon}, graph ${arm.graph} loaded in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return index;
  });
  const rows: AbRow[] = [];
  for (const ef of efs) {
    const acc = arms.map(() => ({ wall: 0, cpu: 0, got: new Array<number[]>(nq) }));
    for (let r = 0; r < rounds; r++) {
      for (let b = 0, turn = r; b < nq; b += batch, turn++) {
        for (let j = 0; j < arms.length; j++) {
          const a = (j + turn) % arms.length;
          loaded[a].setEf(Math.max(ef, k));
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          for (let i = b; i < Math.min(nq, b + batch); i++) acc[a].got[i] = loaded[a].searchKnn(qs[i], k).neighbors;
          acc[a].wall += performance.now() - t0;
          const c = process.cpuUsage(c0);
          acc[a].cpu += (c.user + c.system) / 1000;
        }
      }
    }
    const row: AbRow = { ef, load1: Math.round(loadavg1() * 100) / 100, arms: {} };
    arms.forEach((arm, a) => {
      row.arms[arm.name] = {
        recall: Math.round(recallAgainstExact(acc[a].got, exact, k) * 1e4) / 1e4,
        qpsWall: Math.round((nq * rounds) / (acc[a].wall / 1000)),
        qpsCpu: Math.round((nq * rounds) / (Math.max(acc[a].cpu, 1e-3) / 1000)),
      };
    });
    log(`--ab ef=${ef} (load ${row.load1}): ${arms.map((arm) => `${arm.name} ${row.arms[arm.name].qpsWall} QPS recall ${row.arms[arm.name].recall}`).join(', ')}`);
    rows.push(row);
  }
  const atRecall: ReturnType<typeof runAb>['atRecall'] = {};
  for (const target of [0.985, 0.99, 0.995]) {
    const per: (typeof atRecall)[string] = {};
    const first = interpolate(rows, arms[0].name, target);
    for (const arm of arms) {
      const x = interpolate(rows, arm.name, target);
      per[arm.name] = x && { ...x, ratioWall: first ? round2(x.qpsWall / first.qpsWall) : NaN, ratioCpu: first ? round2(x.qpsCpu / first.qpsCpu) : NaN };
    }
    atRecall[String(target)] = per;
  }
  return { rows, atRecall };
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const loadavg1 = () => (fs.existsSync('/proc/loadavg') ? Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) : 0);

/** QPS at `target` recall: log QPS linear in recall between the two ef around it; null outside the sweep. */
function interpolate(rows: AbRow[], arm: string, target: number): { ef: number; qpsWall: number; qpsCpu: number } | null {
  for (let i = 0; i < rows.length; i++) {
    const b = rows[i].arms[arm];
    if (b.recall < target) continue;
    if (i === 0) return b.recall === target ? { ef: rows[0].ef, qpsWall: b.qpsWall, qpsCpu: b.qpsCpu } : null;
    const a = rows[i - 1].arms[arm];
    const f = (target - a.recall) / (b.recall - a.recall);
    const lerp = (x: number, y: number) => Math.round(Math.exp(Math.log(x) + f * (Math.log(y) - Math.log(x))));
    return { ef: Math.round(rows[i - 1].ef + f * (rows[i].ef - rows[i - 1].ef)), qpsWall: lerp(a.qpsWall, b.qpsWall), qpsCpu: lerp(a.qpsCpu, b.qpsCpu) };
  }
  return null;
}
