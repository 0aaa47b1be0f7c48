/**
 * Error type of the data side. Every user-facing failure of the data pipeline
 * (missing path, unknown format, corrupt or truncated file, missing build) is a
 * `DataError` with a one-line message that names the offending file, so the CLI
 * can print `error: <message>` and exit without a stack trace.
 */
export class DataError extends Error {
  override readonly name = 'DataError';

  constructor(message: string, options?: { cause?: unknown }) {
    // Keep the message on one line whatever the cause says.
    super(message.replace(/\s*\n\s*/g, ' '), options);
  }
}

/** The message of an unknown thrown value, on one line. */
export function errorText(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  return s.replace(/\s*\n\s*/g, ' ');
}
