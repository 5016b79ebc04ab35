// Shared by the benchmarks: percentiles, formatting and the result table.

/** The value at quantile `p` of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** Milliseconds with three decimals. */
export function ms(x: number): string {
  return `${x.toFixed(3)} ms`;
}

/** Rows of the final table: benchmark, result, baseline measured in the same run, ratio. */
export const rows: string[][] = [];

/** Adds a row and echoes it to stderr as it is measured. */
export function row(
  name: string,
  result: string,
  baseline: string,
  ratio: string,
): void {
  rows.push([name, result, baseline, ratio]);
  console.error(`${name}: ${result} | baseline ${baseline} | ${ratio}`);
}

/** Prints the table as Markdown. */
export function printTable(): void {
  console.log("\n| benchmark | result | baseline (same run) | ratio |");
  console.log("| --- | --- | --- | --- |");
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

/** Times `n` sequential calls of `fn` after `warmup` untimed ones; returns the sorted times in ms. */
export async function timeEach(
  n: number,
  warmup: number,
  fn: () => Promise<unknown>,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b);
}
