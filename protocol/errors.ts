/** Stable codes for everything `decode` can refuse (PROTOCOL.md §6). */
export const ProtocolErrorCode = {
  TOO_SHORT: 'FC_ERR_TOO_SHORT',
  BAD_MAGIC: 'FC_ERR_BAD_MAGIC',
  BAD_VERSION: 'FC_ERR_BAD_VERSION',
  UNKNOWN_TYPE: 'FC_ERR_UNKNOWN_TYPE',
  BAD_TRACK: 'FC_ERR_BAD_TRACK',
  BAD_FRAGMENT: 'FC_ERR_BAD_FRAGMENT',
  BAD_LENGTH: 'FC_ERR_BAD_LENGTH',
  BAD_BODY: 'FC_ERR_BAD_BODY',
  BAD_FIELD: 'FC_ERR_BAD_FIELD',
  TOO_LARGE: 'FC_ERR_TOO_LARGE',
} as const;
export type ProtocolErrorCode = (typeof ProtocolErrorCode)[keyof typeof ProtocolErrorCode];

/** The only error `decode` and `encode` throw. */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}
