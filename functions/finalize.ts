// Finalize stage handler: once every item of a run is terminal, writes the dataset and manifest, once.
import { runFinalize, sqsBatchHandler } from '@anyprefer/core';

export const handler = sqsBatchHandler((record, deps) => runFinalize(deps, record.body));
