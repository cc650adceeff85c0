// The commands that talk to a deployed stack (or any AWS-compatible endpoint); bin/anyprefer.ts
// dispatches to them. Each takes its arguments (after the command name) and returns the exit
// code: 0 done, 1 failed (the reason on stderr), 2 usage error.
import { pullCommand } from './pull';
import { redriveCommand } from './redrive';
import { statusCommand } from './status';
import { submitCommand } from './submit';

export type RemoteCommandName = 'submit' | 'status' | 'pull' | 'redrive';

export const remoteCommands: Record<RemoteCommandName, (args: string[]) => Promise<number>> = {
  submit: (args) => submitCommand(args),
  status: (args) => statusCommand(args),
  pull: (args) => pullCommand(args),
  redrive: (args) => redriveCommand(args),
};

export const isRemoteCommand = (name: string | undefined): name is RemoteCommandName =>
  name !== undefined && Object.hasOwn(remoteCommands, name);

/** Lines for the CLI's USAGE, after the `run` line. */
export const REMOTE_USAGE = `  anyprefer submit FILE --stack NAME [--config FILE] [--name NAME]   start a run on a deployed stack
  anyprefer status [RUN] --stack NAME [--watch] [--json]             latest runs, or one run's progress and usage
  anyprefer pull RUN --stack NAME [--out DIR] [--partial]            download and check a run's dataset
  anyprefer redrive --stack NAME [--dry-run] [--stage NAMES]         move dead-letter messages back to their queues

Every stack command takes --stack NAME (or --resources FILE: a JSON file of the stack's output
names, for AWS-compatible servers without CloudFormation), --region REGION and --endpoint-url URL.
"anyprefer COMMAND --help" shows a command's options.`;

export { pullCommand, redriveCommand, statusCommand, submitCommand };
export { SUBMIT_USAGE } from './submit';
export { STATUS_USAGE } from './status';
export { PULL_USAGE } from './pull';
export { REDRIVE_USAGE } from './redrive';
export type { CommandIo } from './options';
