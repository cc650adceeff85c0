// The two ways a remote command fails on purpose.

/** A wrong invocation: the command prints the message with its usage and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A failure the command explains itself (exit 1, message without a stack trace). */
export class CommandError extends Error {
  override name = 'CommandError';
}
