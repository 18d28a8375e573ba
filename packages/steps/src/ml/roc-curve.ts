/** The points of a one-vs-rest ROC curve, for plotting (like scikit-learn's `roc_curve`). */

export interface RocPoint {
  /** False positive rate: negatives scoring at or above the threshold, over all negatives. */
  fpr: number;
  /** True positive rate (recall): positives scoring at or above the threshold, over all positives. */
  tpr: number;
  /** The score threshold; Infinity for the first point (0, 0). */
  threshold: number;
}

/**
 * One point per distinct score, from (0, 0) to (1, 1) by descending threshold; points in the middle of a
 * straight horizontal or vertical run are dropped (they add nothing to the plot or the area). Null when
 * there is no positive or no negative, as for the AUC.
 */
export function rocCurve(scores: Float64Array, positives: Uint8Array): RocPoint[] | null {
  const order = [...scores.keys()].sort((a, b) => scores[b]! - scores[a]!);
  const positiveCount = positives.reduce((sum, p) => sum + (p ? 1 : 0), 0);
  const negativeCount = scores.length - positiveCount;
  if (positiveCount === 0 || negativeCount === 0) return null;
  const points: RocPoint[] = [{ fpr: 0, tpr: 0, threshold: Infinity }];
  let truePositives = 0;
  let falsePositives = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    if (positives[i]) truePositives++;
    else falsePositives++;
    const next = order[k + 1];
    if (next !== undefined && scores[next] === scores[i]) continue;
    points.push({ fpr: falsePositives / negativeCount, tpr: truePositives / positiveCount, threshold: scores[i]! });
  }
  return dropCollinear(points);
}

function dropCollinear(points: RocPoint[]): RocPoint[] {
  return points.filter((point, k) => {
    const before = points[k - 1];
    const after = points[k + 1];
    if (!before || !after) return true;
    const sameFpr = before.fpr === point.fpr && point.fpr === after.fpr;
    const sameTpr = before.tpr === point.tpr && point.tpr === after.tpr;
    return !sameFpr && !sameTpr;
  });
}

/** The area under the curve's points by the trapezoid rule. */
export function areaUnder(points: readonly RocPoint[]): number {
  let area = 0;
  for (let k = 1; k < points.length; k++) area += ((points[k]!.fpr - points[k - 1]!.fpr) * (points[k]!.tpr + points[k - 1]!.tpr)) / 2;
  return area;
}
