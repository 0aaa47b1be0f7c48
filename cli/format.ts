/** Small formatting helpers for human-readable command output. */

/** 3349342 → "3,349,342". */
export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 3349342 → "3.35M", 528353290 → "528.4M", 1.2e9 → "1.20G". */
export function fmtSI(n: number): string {
  const units: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [v, u] of units) {
    if (Math.abs(n) >= v) {
      const x = n / v;
      return `${x >= 100 ? x.toFixed(1) : x.toFixed(2)}${u}`;
    }
  }
  return String(n);
}

/** Byte counts: "13.4 MiB". */
export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = n;
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${x.toFixed(1)} ${units[i]}`;
}

export function fmtShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(',')}]`;
}

/** Aligned "key  value" lines. */
export function table(rows: readonly (readonly [string, string])[], indent = ''): string {
  const w = Math.max(0, ...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${indent}${k.padEnd(w)}  ${v}`).join('\n');
}
