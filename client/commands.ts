import { parseProducerId } from '../protocol/ids.ts';

/** One line typed at the client's prompt, parsed (pure). */
export type Command =
  | { readonly kind: 'subscribe' | 'unsubscribe'; readonly id: number }
  | { readonly kind: 'list' | 'stats' | 'view' | 'help' | 'quit' | 'empty' }
  | { readonly kind: 'error'; readonly message: string };

export const HELP_TEXT = [
  'commands:',
  '  subscribe <id>     watch a producer (hex ID, e.g. 1AAA99)',
  '  unsubscribe <id>   stop watching it',
  '  list               live producers with their metadata and viewers',
  '  stats              figures of each subscription, and of the broker',
  '  view               the address of the live view: open it in a browser (started on first use)',
  '  help               this text',
  '  quit               unsubscribe from everything and leave (also Ctrl-D, Ctrl-C)',
].join('\n');

const ALIASES: Record<string, string> = { sub: 'subscribe', unsub: 'unsubscribe', ls: 'list', exit: 'quit', q: 'quit', '?': 'help' };

export function parseCommand(line: string): Command {
  const words = line.trim().split(/\s+/).filter((w) => w.length > 0);
  if (words.length === 0) return { kind: 'empty' };
  const name = ALIASES[words[0].toLowerCase()] ?? words[0].toLowerCase();
  switch (name) {
    case 'subscribe':
    case 'unsubscribe': {
      if (words.length !== 2) return { kind: 'error', message: `usage: ${name} <producer_id>` };
      const id = parseProducerId(words[1]);
      if (id === null) return { kind: 'error', message: `'${words[1]}' is not a producer ID: use 1 to 8 hex digits, e.g. 1AAA99` };
      return { kind: name, id };
    }
    case 'list':
    case 'stats':
    case 'view':
    case 'help':
    case 'quit':
      if (words.length !== 1) return { kind: 'error', message: `${name} takes no arguments` };
      return { kind: name };
    default:
      return { kind: 'error', message: `unknown command '${words[0]}' (type help)` };
  }
}
