/** A training/search failure meant for the user as is (bad settings, nothing to resume...). */
export class TrainError extends Error {
  override name = 'TrainError';
}
