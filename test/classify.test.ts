import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  knnVote,
  voteWeight,
  accuracy,
  averagePrecision,
  meanAveragePrecision,
  precisionAtK,
  recallAtK,
  confusionMatrix,
  perClassPrecisionRecall,
  formatConfusionTable,
  recallAgainstExact,
} from '../src/classify.ts';
import { InvalidParameterError } from '../src/errors.ts';

const EPS = 1e-9;
const close = (actual: number, expected: number, eps = EPS): void =>
  assert.ok(Math.abs(actual - expected) <= eps, `expected ${expected} ± ${eps}, got ${actual}`);

describe('voteWeight', () => {
  it('is max(score, 0)^power', () => {
    close(voteWeight(0.5), 0.5);
    close(voteWeight(0.5, 3), 0.125);
    assert.equal(voteWeight(-0.4, 2), 0);
    assert.equal(voteWeight(0), 0);
  });

  it('is monotone in the score', () => {
    for (const p of [0.5, 1, 2, 8]) assert.ok(voteWeight(0.9, p) > voteWeight(0.8, p));
  });
});

describe('knnVote', () => {
  it('weights each label by the summed similarity of its neighbours', () => {
    const r = knnVote([
      { label: 'cat', score: 0.9 },
      { label: 'dog', score: 0.8 },
      { label: 'cat', score: 0.5 },
    ]);
    assert.equal(r.label, 'cat');
    close(r.votes.cat, 0.9 + 0.5);
    close(r.votes.dog, 0.8);
    close(r.confidence, (0.9 + 0.5) / (0.9 + 0.5 + 0.8));
  });

  it('lets a closer minority outweigh a farther majority', () => {
    const r = knnVote([
      { label: 'cat', score: 0.95 },
      { label: 'dog', score: 0.3 },
      { label: 'dog', score: 0.3 },
    ]);
    assert.equal(r.label, 'cat');
    close(r.confidence, 0.95 / 1.55);
  });

  it('sharpens toward the nearest neighbours as power grows', () => {
    const ns = [
      { label: 'cat', score: 0.9 },
      { label: 'dog', score: 0.6 },
      { label: 'dog', score: 0.6 },
    ];
    assert.equal(knnVote(ns, { power: 1 }).label, 'dog'); // 1.2 > 0.9
    const p4 = knnVote(ns, { power: 4 }); // 0.6561 > 2 * 0.1296
    assert.equal(p4.label, 'cat');
    close(p4.confidence, 0.9 ** 4 / (0.9 ** 4 + 2 * 0.6 ** 4));
  });

  it('skips unlabelled neighbours', () => {
    const r = knnVote([
      { label: null, score: 0.99 },
      { score: 0.98 },
      { label: '', score: 0.97 },
      { label: 'cat', score: 0.5 },
      { label: 'dog', score: 0.5 * (1 / 3) },
    ]);
    assert.equal(r.label, 'cat');
    assert.deepEqual(Object.keys(r.votes), ['cat', 'dog']);
    close(r.confidence, 0.5 / (0.5 + 0.5 / 3)); // the unlabelled 0.99/0.98/0.97 are not in the total
  });

  it('gives label null and confidence 0 when every neighbour is unlabelled', () => {
    assert.deepEqual(knnVote([{ label: null, score: 0.9 }, { score: 0.8 }]), { label: null, confidence: 0, votes: {} });
  });

  it('gives label null and confidence 0 for no neighbours', () => {
    assert.deepEqual(knnVote([]), { label: null, confidence: 0, votes: {} });
  });

  it('gives label null when no labelled neighbour has a positive score', () => {
    const r = knnVote([{ label: 'cat', score: -0.2 }, { label: 'dog', score: 0 }]);
    assert.equal(r.label, null);
    assert.equal(r.confidence, 0);
  });

  it('gives no weight to dissimilar (negative score) neighbours', () => {
    const r = knnVote([{ label: 'cat', score: 0.4 }, { label: 'dog', score: -0.9 }]);
    assert.equal(r.label, 'cat');
    assert.equal(r.confidence, 1);
    assert.equal(r.votes.dog, 0);
  });

  it('has confidence exactly 1 for a unanimous vote', () => {
    const r = knnVote([
      { label: 'cat', score: 0.7 },
      { label: 'cat', score: 0.3 },
      { label: 'cat', score: 0.1 },
    ]);
    assert.equal(r.label, 'cat');
    assert.equal(r.confidence, 1);
  });

  it('abstains (label null) below minConfidence but still reports confidence and votes', () => {
    const ns = [
      { label: 'cat', score: 0.6 },
      { label: 'dog', score: 0.4 },
    ];
    const conf = 0.6 / (0.6 + 0.4);
    const below = knnVote(ns, { minConfidence: 0.7 });
    assert.equal(below.label, null);
    close(below.confidence, conf);
    close(below.votes.cat, 0.6);
    assert.equal(knnVote(ns, { minConfidence: conf }).label, 'cat'); // threshold is inclusive
  });

  it('breaks a weight tie by the higher top score', () => {
    const r = knnVote([
      { label: 'ant', score: 0.5 },
      { label: 'bee', score: 0.6 },
      { label: 'ant', score: 0.5 },
      { label: 'bee', score: 0.4 },
    ]);
    assert.equal(r.label, 'bee'); // both weigh 1.0; bee's best neighbour is closer
    close(r.confidence, 0.5);
  });

  it('breaks a weight tie with equal top scores alphabetically, whatever the order', () => {
    const ns = [
      { label: 'zebra', score: 0.5 },
      { label: 'horse', score: 0.5 },
    ];
    assert.equal(knnVote(ns).label, 'horse');
    assert.equal(knnVote([...ns].reverse()).label, 'horse');
  });

  it('treats sums equal up to rounding as a tie', () => {
    // 0.1 + 0.2 !== 0.3 in floating point, yet the two labels carry the same weight.
    const r = knnVote([
      { label: 'b', score: 0.1 },
      { label: 'b', score: 0.2 },
      { label: 'a', score: 0.3 },
    ]);
    assert.equal(r.label, 'a'); // tie on weight, a has the higher top score
  });

  it('refuses a non-finite score and out-of-range options', () => {
    assert.throws(() => knnVote([{ label: 'cat', score: Number.NaN }]), InvalidParameterError);
    assert.throws(() => knnVote([], { minConfidence: 1.5 }), /for minConfidence/);
    assert.throws(() => knnVote([], { power: 0 }), /for power/);
  });
});

describe('accuracy', () => {
  it('is the share of exact matches, counting null as wrong', () => {
    assert.equal(accuracy(['a', 'b', 'c', 'a'], ['a', 'b', null, 'b']), 2 / 4);
  });

  it('is 0 for empty input', () => {
    assert.equal(accuracy([], []), 0);
  });

  it('refuses lists of different lengths', () => {
    assert.throws(() => accuracy(['a'], []), InvalidParameterError);
  });
});

describe('averagePrecision', () => {
  it('averages precision at each relevant rank over all relevant items', () => {
    close(averagePrecision([true, false, true], 2), (1 / 1 + 2 / 3) / 2);
  });

  it('counts relevant items never retrieved as misses', () => {
    close(averagePrecision([true, false, true], 4), (1 / 1 + 2 / 3) / 4);
  });

  it('defaults totalRelevant to the hits in the list', () => {
    close(averagePrecision([false, true, true]), (1 / 2 + 2 / 3) / 2);
  });

  it('is 1 for a perfect ranking and 0 with nothing relevant', () => {
    assert.equal(averagePrecision([true, true, false], 2), 1);
    assert.equal(averagePrecision([false, false], 0), 0);
    assert.equal(averagePrecision([], 0), 0);
    assert.equal(averagePrecision([]), 0);
  });

  it('refuses totalRelevant below the hits in the list', () => {
    assert.throws(() => averagePrecision([true, true], 1), /for totalRelevant/);
  });
});

describe('meanAveragePrecision', () => {
  it('is the mean of the per-query average precisions', () => {
    const q1 = { relevant: [true, false, true], totalRelevant: 2 };
    const q2 = { relevant: [false, true], totalRelevant: 1 };
    close(meanAveragePrecision([q1, q2]), ((1 + 2 / 3) / 2 + 1 / 2) / 2);
  });

  it('is 0 with no queries', () => {
    assert.equal(meanAveragePrecision([]), 0);
  });
});

describe('precisionAtK', () => {
  it('is the share of relevant items in the top k', () => {
    const r = [true, false, true, true, false];
    assert.equal(precisionAtK(r, 1), 1);
    assert.equal(precisionAtK(r, 3), 2 / 3);
    assert.equal(precisionAtK(r, 5), 3 / 5);
  });

  it('counts ranks missing from a short list as misses', () => {
    assert.equal(precisionAtK([true, true], 4), 2 / 4);
    assert.equal(precisionAtK([], 3), 0);
  });

  it('refuses k < 1', () => {
    assert.throws(() => precisionAtK([true], 0), /for k/);
  });
});

describe('recallAtK', () => {
  it('is the share of all relevant items found in the top k', () => {
    const r = [true, false, true, true, false];
    assert.equal(recallAtK(r, 1, 4), 1 / 4);
    assert.equal(recallAtK(r, 3, 4), 2 / 4);
    assert.equal(recallAtK(r, 10, 4), 3 / 4);
  });

  it('is 0 with nothing relevant', () => {
    assert.equal(recallAtK([false, false], 2, 0), 0);
    assert.equal(recallAtK([], 2, 0), 0);
  });

  it('refuses totalRelevant below the hits in the list', () => {
    assert.throws(() => recallAtK([true, true], 1, 1), /for totalRelevant/);
  });
});

describe('confusionMatrix', () => {
  const truth = ['cat', 'cat', 'dog', 'dog', 'dog', 'owl'];
  const pred = ['cat', 'dog', 'dog', null, 'cat', 'owl'];

  it('counts truth by row and prediction by column, labels sorted', () => {
    const cm = confusionMatrix(truth, pred);
    assert.deepEqual(cm.labels, ['cat', 'dog', 'owl']);
    assert.deepEqual(cm.matrix, [
      [1, 1, 0],
      [1, 1, 0],
      [0, 0, 1],
    ]);
  });

  it('counts null predictions in a separate unknown column per truth row', () => {
    assert.deepEqual(confusionMatrix(truth, pred).unknown, [0, 1, 0]);
  });

  it('accounts for every item', () => {
    const cm = confusionMatrix(truth, pred);
    const sum = cm.matrix.flat().reduce((a, b) => a + b, 0) + cm.unknown.reduce((a, b) => a + b, 0);
    assert.equal(sum, truth.length);
  });

  it('follows the given label order and appends unlisted labels sorted', () => {
    const cm = confusionMatrix(['b', 'a', 'c'], ['b', 'z', 'c'], ['c', 'b']);
    assert.deepEqual(cm.labels, ['c', 'b', 'a', 'z']);
    assert.equal(cm.matrix[2][3], 1); // a predicted as z
  });

  it('includes labels that are only ever predicted', () => {
    const cm = confusionMatrix(['a'], ['b']);
    assert.deepEqual(cm.labels, ['a', 'b']);
    assert.deepEqual(cm.matrix, [[0, 1], [0, 0]]);
  });

  it('is empty for empty input', () => {
    assert.deepEqual(confusionMatrix([], []), { labels: [], matrix: [], unknown: [] });
  });
});

describe('perClassPrecisionRecall', () => {
  it('derives precision, recall, F1 and support from the confusion counts', () => {
    const truth = ['cat', 'cat', 'dog', 'dog', 'dog', 'owl'];
    const pred = ['cat', 'dog', 'dog', null, 'cat', 'owl'];
    const s = perClassPrecisionRecall(truth, pred);
    const f1 = (p: number, r: number) => (2 * p * r) / (p + r);
    // cat: tp 1, predicted cat 2, support 2
    close(s.cat.precision, 1 / 2);
    close(s.cat.recall, 1 / 2);
    close(s.cat.f1, f1(1 / 2, 1 / 2));
    assert.equal(s.cat.support, 2);
    // dog: tp 1, predicted dog 2, support 3 (one abstention lowers recall, not precision)
    close(s.dog.precision, 1 / 2);
    close(s.dog.recall, 1 / 3);
    close(s.dog.f1, f1(1 / 2, 1 / 3));
    assert.equal(s.dog.support, 3);
    assert.deepEqual(s.owl, { precision: 1, recall: 1, f1: 1, support: 1 });
  });

  it('gives 0, not NaN, for a class never predicted or never true', () => {
    const s = perClassPrecisionRecall(['a', 'a'], ['b', 'b']);
    assert.deepEqual(s.a, { precision: 0, recall: 0, f1: 0, support: 2 });
    assert.deepEqual(s.b, { precision: 0, recall: 0, f1: 0, support: 0 });
  });
});

describe('formatConfusionTable', () => {
  it('renders aligned rows with zeros as dots, a (none) column and totals', () => {
    const cm = confusionMatrix(['cat', 'cat', 'dog', 'dog', 'dog'], ['cat', 'dog', 'dog', null, 'dog']);
    assert.equal(
      formatConfusionTable(cm),
      [
        'truth \\ pred  cat  dog  (none)  total',
        'cat             1    1       .      2',
        'dog             .    2       1      3',
        '',
      ].join('\n'),
    );
  });

  it('omits the (none) column when nothing abstained', () => {
    const out = formatConfusionTable(confusionMatrix(['a', 'b'], ['a', 'a']));
    assert.ok(!out.includes('(none)'));
    assert.equal(new Set(out.trimEnd().split('\n').map((l) => l.length)).size, 1); // right-aligned: equal widths
  });

  it('truncates long labels to maxLabelWidth', () => {
    const out = formatConfusionTable(confusionMatrix(['hippopotamus'], ['hippopotamus']), { maxLabelWidth: 6 });
    assert.ok(out.includes('hippo…'));
    assert.ok(!out.includes('hippopotamus'));
  });
});

describe('recallAgainstExact', () => {
  it('is the mean share of the exact top k found by the approximate search', () => {
    const exact = [
      [1, 2, 3],
      [4, 5, 6],
    ];
    const approx = [
      [1, 3, 9],
      [6, 5, 4],
    ];
    close(recallAgainstExact(approx, exact, 3), (2 / 3 + 3 / 3) / 2);
  });

  it('ignores order within the top k and anything past k', () => {
    assert.equal(recallAgainstExact([[2, 1, 3]], [[1, 2, 7]], 2), 1);
  });

  it('divides by the exact list size when fewer than k rows exist', () => {
    assert.equal(recallAgainstExact([[1, 2]], [[2, 1]], 10), 1);
    assert.equal(recallAgainstExact([[1]], [[2, 1]], 10), 1 / 2);
  });

  it('does not count a duplicated id twice', () => {
    assert.equal(recallAgainstExact([[1, 1]], [[1, 2]], 2), 1 / 2);
  });

  it('is 0 with no queries and 1 for a query with no exact neighbours', () => {
    assert.equal(recallAgainstExact([], [], 10), 0);
    assert.equal(recallAgainstExact([[]], [[]], 10), 1);
  });

  it('refuses mismatched query counts', () => {
    assert.throws(() => recallAgainstExact([[1]], [], 1), /for approx/);
  });
});
