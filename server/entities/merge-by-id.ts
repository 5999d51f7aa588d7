/**
 * The first `count` rows of sorted runs, in id order. Ids are ASCII, so JS string order is
 * SQLite's byte order; with a handful of shards, scanning the heads beats a heap.
 */
export function mergeById<Row extends { id: string }>(runs: Iterator<Row>[], count: number): Row[] {
  const heads = runs.map((run) => run.next());
  const merged: Row[] = [];
  while (merged.length < count) {
    let smallest = -1;
    heads.forEach((head, i) => {
      if (!head.done && (smallest < 0 || head.value.id < (heads[smallest]!.value as Row).id)) smallest = i;
    });
    if (smallest < 0) break;
    merged.push(heads[smallest]!.value as Row);
    heads[smallest] = runs[smallest]!.next();
  }
  return merged;
}
