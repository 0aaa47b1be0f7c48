/** A user-facing study error (bad option, incompatible study directory, failed trial process…): one line. */
export class StudyError extends Error {
  override name = 'StudyError';
}
