/** JSON-lines logs (one record per line, appended and flushed at once). */
import { appendFileSync } from 'node:fs';

export function appendJsonLine(path: string, rec: unknown): void {
  appendFileSync(path, `${JSON.stringify(rec)}\n`);
}
