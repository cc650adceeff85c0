import { evalCommand } from '/work/main/bin/commands/eval';
process.exitCode = await evalCommand(process.argv.slice(2));
