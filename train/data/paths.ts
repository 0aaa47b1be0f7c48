/**
 * Repository-root lookup for the data side (shipped files under models/data,
 * the compiled worker under dist/): the one implementation lives in graph/paths.
 */
export { findRepoRoot, modelDataPath, repoPath } from '../../graph/paths.js';
