// ---- The runtime (shared/pdl/runtime.d.ts, for shared/pdl/runtime.js).

/** What the codec reads from: a Uint8Array, an ArrayBuffer (a WebSocket message), a SharedArrayBuffer or another ArrayBufferView. */
export type Bytes = ArrayBufferLike | ArrayBufferView;

/** Bytes in a packet header: `[size: u16][id: u16]`. */
export declare const HEADER_LEN: 4;
/** The largest packet the wire format can describe: `size` is a u16. */
export declare const MAX_PACKET_LEN: 65535;

/** Which way a packet travels (`C_…`: client → server, `S_…`: server → client). */
export type Direction = 'ClientToServer' | 'ServerToClient';
export declare const Direction: { readonly ClientToServer: 'ClientToServer'; readonly ServerToClient: 'ServerToClient' };

/** The cases of `DecodeError`, named as the Rust `DecodeError` variants. */
export type DecodeErrorKind =
  | 'ShortHeader'
  | 'SizeMismatch'
  | 'UnknownPacketId'
  | 'WrongDirection'
  | 'Truncated'
  | 'StringOverrun'
  | 'OddStringLength'
  | 'UnpairedSurrogate'
  | 'ListOverrun'
  | 'TrailingBytes';

/** Why bytes are not a valid packet; the message is the Rust one. Properties: the Rust variant's fields. */
export declare class DecodeError extends Error {
  readonly name: 'DecodeError';
  readonly kind: DecodeErrorKind;
  /** The packet being read (for `WrongDirection`: the packet the id names). */
  readonly packet?: string;
  /** The field, by its name in the definition file. */
  readonly field?: string;
  readonly id?: number;
  readonly direction?: Direction;
  readonly len?: number;
  readonly declared?: number;
  readonly actual?: number;
  readonly needed?: number;
  readonly remaining?: number;
  readonly count?: number;
  readonly unit?: number;
  readonly extra?: number;
}

/** The cases of `EncodeError`: the Rust ones, and the two JavaScript's missing types call for. */
export type EncodeErrorKind = 'PacketTooLarge' | 'StringTooLong' | 'ListTooLong' | 'InvalidValue' | 'UnpairedSurrogate';

/** Why a packet cannot be encoded; nothing is encoded then. */
export declare class EncodeError extends Error {
  readonly name: 'EncodeError';
  readonly kind: EncodeErrorKind;
  readonly packet: string;
  readonly field?: string;
  readonly size?: number;
  readonly bytes?: number;
  readonly count?: number;
  /** For `InvalidValue`: what the field takes, and what it was given. */
  readonly expected?: string;
  readonly value?: unknown;
  readonly unit?: number;
}

/** Why a byte stream cannot be split into packets; close the connection. */
export declare class FrameError extends Error {
  readonly name: 'FrameError';
  readonly kind: 'SizeTooSmall' | 'SizeTooLarge';
  readonly size: number;
  readonly max?: number;
}

/** The header of a whole packet: `[size, id]`, checked against its length. Throws `DecodeError`. */
export declare function readHeader(frame: Bytes): [size: number, id: number];

/**
 * Splits received bytes into packets. Bytes after the last whole packet are kept for the next
 * `extend` (`buffered` counts them). Frames are views of the bytes given, never written to.
 */
export declare class FrameDecoder {
  /** @param maxFrame the largest `size` accepted (default and at most 65535, at least 4) */
  constructor(maxFrame?: number);
  readonly maxFrame: number;
  /** Bytes held that are not part of a frame handed out. */
  readonly buffered: number;
  /** Appends received bytes. */
  extend(data: Bytes): void;
  /** The next whole packet, header included, or `null` when more bytes are needed. Throws `FrameError`. */
  nextFrame(): Uint8Array | null;
  /** `extend(data)`, then every whole packet now held. Throws `FrameError` after the good ones. */
  frames(data: Bytes): Generator<Uint8Array, void, undefined>;
}

// ---- Generated from the definition file.
