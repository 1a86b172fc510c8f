/**
 * Summarises smvs.ts output (JSON lines on stdin): per config × method × N, the threshold T that
 * maximises the mean P@1 over the three categories (one T for all categories), then per category
 * P@1 / R@5 / false verified / ms at that T; and the best per category for reference.
 *   node --import tsx bench/local/smvs.ts ... | tee run.jsonl; node --import tsx bench/local/summarize.ts < run.jsonl
 */
import fs from 'node:fs';

const rows = fs.readFileSync(0, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const verify = rows.filter((r) => r.kind === 'verify');
const groups = new Map<string, typeof verify>();
for (const r of verify) {
  const k = `${r.config} ${r.method} ${r.rule ?? 'thresh'}${r.a ? ` a=${r.a}` : ''} N=${r.N}`;
  if (!groups.has(k)) groups.set(k, []);
  groups.get(k)!.push(r);
}
const lines: Array<[number, string]> = [];
for (const [k, rs] of groups) {
  const Ts = [...new Set(rs.map((r) => r.T))];
  let best: { T: number; score: number } = { T: 0, score: -1 };
  for (const T of Ts) {
    const at = rs.filter((r) => r.T === T);
    const score = at.reduce((s, r) => s + r.p1, 0) / at.length;
    if (score > best.score) best = { T, score };
  }
  const at = rs.filter((r) => r.T === best.T);
  const cells = at.map((r) => `${r.category.slice(0, 4)} P@1 ${r.p1.toFixed(3)} R@5 ${r.r5.toFixed(3)} fvPair ${r.falseVerifiedPairs} fvTop1 ${r.falseVerifiedTop1} ms ${r.msP50}/${r.msP90}`);
  lines.push([best.score, `${k} T=${best.T} mean ${best.score.toFixed(3)} | ${cells.join(' | ')}`]);
}
lines.sort((a, b) => b[0] - a[0]);
process.stdout.on("error", () => process.exit(0));
for (const [, l] of lines) console.log(l);
console.log('\nbest per category:');
for (const cat of [...new Set(verify.map((r) => r.category))]) {
  const b = verify.filter((r) => r.category === cat).sort((a, c) => c.p1 - a.p1 || c.r5 - a.r5)[0];
  console.log(cat, JSON.stringify(b));
}
for (const r of rows.filter((r) => r.kind === 'config' || r.kind === 'global')) console.log(JSON.stringify(r));
