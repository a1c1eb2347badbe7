/** Producer IDs are 32-bit and written in hexadecimal, as in the original service: `1AAA99`. */
const HEX_ID = /^(?:0x)?[0-9a-fA-F]{1,8}$/;

/** Parses a hexadecimal producer ID; returns null for anything else, and for 0 (reserved). */
export function parseProducerId(text: string): number | null {
  if (!HEX_ID.test(text)) return null;
  const id = Number.parseInt(text.replace(/^0x/, ''), 16);
  return id === 0 ? null : id;
}

/** Formats a producer ID as upper-case hexadecimal: 0x1aaa99 -> "1AAA99". */
export function formatProducerId(id: number): string {
  return id.toString(16).toUpperCase();
}
