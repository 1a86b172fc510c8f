/**
 * Probe: keypoints and matches of a few museum_paintings pairs that failed, per feature config
 * (this is how the low-contrast problem and the CLAHE fix were found).
 *   node --import tsx bench/local/probe.ts orb-q640-r480-n500 orb-q640-r480-n500-clahe ...
 * Per pair: query/reference keypoints, ratio-test matches at 0.8/0.9, hough4 at 0.8/0.9, homography inliers.
 */
import path from 'node:path';
import { loadCv, cv, extract, descMat, match, parseConfig } from './features.ts';
import { hough, homography } from './geometry.ts';
await loadCv();
const c = cv();
const bf = new c.BFMatcher(c.NORM_HAMMING, false);
const dir = '/work/shared/datasets/smvs/museum_paintings';
const qs = ['005', '025', '026', '030', '043', '048', '049', '052', '056', '060', '013', '045'];
for (const name of process.argv.slice(2)) {
  const cfg = parseConfig(name);
  const cells: string[] = [];
  for (const q of qs) {
    const qf = await extract(path.join(dir, 'query', q + '.jpg'), cfg.q, cfg);
    const rf = await extract(path.join(dir, 'reference', q + '.jpg'), cfg.r, cfg);
    const qm = descMat(qf), rm = descMat(rf);
    const m8 = match(bf, qm, rm, 0.8), m9 = match(bf, qm, rm, 0.9);
    cells.push(`${q}:${qf.count}/${rf.count} m${m8.length}/${m9.length} h4 ${hough(qf, rf, m8, true).count}/${hough(qf, rf, m9, true).count} H ${homography(qf, rf, m8)}`);
    qm.delete(); rm.delete();
  }
  console.log(name, cells.join(' | '));
}
