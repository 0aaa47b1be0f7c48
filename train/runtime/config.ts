/**
 * Run configurations: comparing the settings a run directory was created with
 * against the ones of a run that wants to continue it.
 */

/**
 * The settings that differ between two configs (values compared as JSON), as
 * one line `key old → new, ...`; empty when they agree. `keys` defaults to
 * every key of either config.
 */
export function configDiff<T extends object>(old: T, now: T, keys?: readonly (keyof T & string)[]): string {
  const all = keys ?? ([...new Set([...Object.keys(old), ...Object.keys(now)])] as (keyof T & string)[]);
  return all
    .filter((k) => JSON.stringify(old[k]) !== JSON.stringify(now[k]))
    .map((k) => `${k} ${JSON.stringify(old[k])} → ${JSON.stringify(now[k])}`)
    .join(', ');
}
