/** Classification metrics from true labels and predicted class probabilities, computed in plain JS. */

export interface ClassMetrics {
  class: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
  /** One-vs-rest ROC-AUC; null when the split has no positive or no negative for the class. */
  roc_auc: number | null;
}

export interface ClassificationReport {
  count: number;
  accuracy: number;
  /** Accuracy counting a hit when the true class is among the k most probable. */
  top_k: number;
  top_k_accuracy: number;
  macro_precision: number;
  macro_recall: number;
  macro_f1: number;
  /** Binary: the AUC of class 1; otherwise the macro average of one-vs-rest AUCs. */
  roc_auc: number | null;
  per_class: ClassMetrics[];
  /** confusion[true][predicted] */
  confusion: number[][];
  classes: string[];
}

/**
 * `probabilities` is row-major [count, classes]. A binary model's single sigmoid output is passed
 * expanded to two columns (1 − p, p) by the caller.
 */
export function classificationReport(labels: Int32Array, probabilities: Float32Array, classes: string[], topK: number): ClassificationReport {
  const classCount = classes.length;
  const count = labels.length;
  const confusion = classes.map(() => new Array<number>(classCount).fill(0));
  let topKHits = 0;
  for (let i = 0; i < count; i++) {
    const row = probabilities.subarray(i * classCount, (i + 1) * classCount);
    const ranked = rankClasses(row);
    confusion[labels[i]!]![ranked[0]!]!++;
    if (ranked.slice(0, topK).includes(labels[i]!)) topKHits++;
  }
  const perClass = classes.map((name, c) => classMetrics(name, c, confusion, labels, probabilities, classCount));
  const aucs = perClass.map((m) => m.roc_auc).filter((auc): auc is number => auc !== null);
  const correct = confusion.reduce((sum, row, c) => sum + row[c]!, 0);
  return {
    count,
    accuracy: count === 0 ? 0 : correct / count,
    top_k: topK,
    top_k_accuracy: count === 0 ? 0 : topKHits / count,
    macro_precision: mean(perClass.map((m) => m.precision)),
    macro_recall: mean(perClass.map((m) => m.recall)),
    macro_f1: mean(perClass.map((m) => m.f1)),
    roc_auc: classCount === 2 ? perClass[1]!.roc_auc : aucs.length > 0 ? mean(aucs) : null,
    per_class: perClass,
    confusion,
    classes,
  };
}

function classMetrics(name: string, c: number, confusion: number[][], labels: Int32Array, probabilities: Float32Array, classCount: number): ClassMetrics {
  const truePositives = confusion[c]![c]!;
  const predicted = confusion.reduce((sum, row) => sum + row[c]!, 0);
  const support = confusion[c]!.reduce((sum, n) => sum + n, 0);
  const precision = predicted === 0 ? 0 : truePositives / predicted;
  const recall = support === 0 ? 0 : truePositives / support;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  const scores = Float64Array.from({ length: labels.length }, (_, i) => probabilities[i * classCount + c]!);
  const positives = Uint8Array.from(labels, (label) => (label === c ? 1 : 0));
  return { class: name, precision, recall, f1, support, roc_auc: rocAuc(scores, positives) };
}

/** Class indices by descending probability (ties by index). */
function rankClasses(row: Float32Array): number[] {
  return [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b);
}

/**
 * ROC-AUC as the Mann–Whitney statistic: the probability that a random positive scores above a random
 * negative, ties counting half (average ranks).
 */
export function rocAuc(scores: Float64Array, positives: Uint8Array): number | null {
  const order = [...scores.keys()].sort((a, b) => scores[a]! - scores[b]!);
  const ranks = new Float64Array(scores.length);
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && scores[order[end + 1]!] === scores[order[start]!]) end++;
    const averageRank = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) ranks[order[k]!] = averageRank;
    start = end + 1;
  }
  let positiveCount = 0;
  let rankSum = 0;
  for (let i = 0; i < scores.length; i++) {
    if (positives[i]) {
      positiveCount++;
      rankSum += ranks[i]!;
    }
  }
  const negativeCount = scores.length - positiveCount;
  if (positiveCount === 0 || negativeCount === 0) return null;
  return (rankSum - (positiveCount * (positiveCount + 1)) / 2) / (positiveCount * negativeCount);
}

function mean(values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** The confusion matrix as an aligned text table, rows = true class, columns = predicted. */
export function confusionTable(report: ClassificationReport): string[] {
  const names = report.classes.map((name, i) => `${i}:${name}`);
  const width = Math.max(...report.confusion.flat().map((n) => String(n).length), ...report.classes.map((_, i) => String(i).length)) + 1;
  const corner = 'true \\ predicted';
  const labelWidth = Math.max(corner.length, ...names.map((n) => n.length));
  const header = `${corner.padEnd(labelWidth)} ${report.classes.map((_, i) => String(i).padStart(width)).join('')}`;
  return [header, ...report.confusion.map((row, i) => `${names[i]!.padEnd(labelWidth)} ${row.map((n) => String(n).padStart(width)).join('')}`)];
}
