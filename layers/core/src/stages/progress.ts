// Run completion: a run is done when its file is fully ingested and every item is terminal.
import type { Dependencies } from '../dependencies';
import type { FinalizeMessage } from '../types';

/** Asks finalize to run when the run is complete; any number of callers may ask (finalize is idempotent). */
export async function checkRunComplete(deps: Dependencies, runId: string): Promise<boolean> {
  const run = await deps.state.getRun(runId);
  if (!run || !run.ingested || (run.status !== 'active' && run.status !== 'finalizing')) return false;
  const counts = await deps.state.terminalCounts(runId);
  if (counts.total < (run.items ?? 0)) return false;
  const message: FinalizeMessage = { runId };
  await deps.queues.send('finalize', [message]);
  return true;
}
