// ---- The runtime: the same rules as shared's Rust codec (src/decode.rs, src/encode.rs, src/frame.rs).
// Copied verbatim into every generated module (from shared/pdl/runtime.js), so the module has no
// imports and can be served as one file.

/** Bytes in a packet header: `[size: u16][id: u16]`. */
export const HEADER_LEN = 4;

/** The largest packet the wire format can describe: `size` is a u16. */
export const MAX_PACKET_LEN = 65535;

/** Which way a packet travels (`C_…`: client → server, `S_…`: server → client). */
export const Direction = Object.freeze({ ClientToServer: 'ClientToServer', ServerToClient: 'ServerToClient' });

const DIRECTION_TEXT = { ClientToServer: 'client → server', ServerToClient: 'server → client' };

/**
 * Why bytes are not a valid packet. `kind` names the case as the Rust `DecodeError` variant does,
 * the other properties are that variant's fields, and the message is the Rust one, word for word.
 */
export class DecodeError extends Error {
  constructor(kind, details) {
    super(decodeMessage(kind, details));
    this.name = 'DecodeError';
    this.kind = kind;
    Object.assign(this, details);
  }
}

function decodeMessage(kind, d) {
  switch (kind) {
    case 'ShortHeader':
      return `${d.len} bytes are too few for the 4-byte packet header`;
    case 'SizeMismatch':
      return `the header says ${d.declared} bytes but the packet has ${d.actual}`;
    case 'UnknownPacketId':
      return `unknown packet id ${d.id}`;
    case 'WrongDirection':
      return `${d.packet} (id ${d.id}) travels ${DIRECTION_TEXT[d.direction]}; it is not accepted from this side`;
    case 'Truncated':
      return `${d.packet}.${d.field}: needs ${d.needed} bytes, only ${d.remaining} left in the packet`;
    case 'StringOverrun':
      return `${d.packet}.${d.field}: a string of ${d.len} bytes runs past the packet (${d.remaining} bytes left)`;
    case 'OddStringLength':
      return `${d.packet}.${d.field}: a string byte length of ${d.len} is odd; UTF-16 comes in 2-byte units`;
    case 'UnpairedSurrogate':
      return `${d.packet}.${d.field}: unpaired UTF-16 surrogate 0x${d.unit.toString(16).padStart(4, '0')}`;
    case 'ListOverrun':
      return `${d.packet}.${d.field}: a list of ${d.count} elements needs at least ${d.needed} bytes, only ${d.remaining} left`;
    case 'TrailingBytes':
      return `${d.packet}: ${d.extra} bytes left over after the last field`;
    default:
      return kind;
  }
}

/**
 * Why a packet cannot be encoded: a limit of the wire format (`PacketTooLarge`, `StringTooLong`,
 * `ListTooLong`, as in Rust), or, since JavaScript does not check types, a value its field cannot
 * hold (`InvalidValue`: a fraction or out-of-range number in an integer field, a number in a
 * `long` field, which takes a bigint…; `UnpairedSurrogate`: a string the UTF-16 decoder on the
 * other side would refuse). Nothing is encoded when it is thrown.
 */
export class EncodeError extends Error {
  constructor(kind, details) {
    super(encodeMessage(kind, details));
    this.name = 'EncodeError';
    this.kind = kind;
    Object.assign(this, details);
  }
}

function encodeMessage(kind, d) {
  switch (kind) {
    case 'PacketTooLarge':
      return `${d.packet} would be ${d.size} bytes, more than the 65,535 a packet's u16 size can hold`;
    case 'StringTooLong':
      return `${d.packet}.${d.field}: a string of ${d.bytes} UTF-16 bytes does not fit its u16 length`;
    case 'ListTooLong':
      return `${d.packet}.${d.field}: a list of ${d.count} elements does not fit its u16 count`;
    case 'InvalidValue':
      return `${d.packet}.${d.field}: expected ${d.expected}, got ${describe(d.value)}`;
    case 'UnpairedSurrogate':
      return `${d.packet}.${d.field}: unpaired UTF-16 surrogate 0x${d.unit.toString(16).padStart(4, '0')} in the string`;
    default:
      return kind;
  }
}

function describe(value) {
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/**
 * Why a byte stream cannot be split into packets: a `size` below the header or above the limit.
 * After one, nothing that follows can be trusted to start a packet: close the connection.
 */
export class FrameError extends Error {
  constructor(kind, details) {
    super(
      kind === 'SizeTooSmall'
        ? `a packet size of ${details.size} is smaller than the 4-byte header`
        : `a packet size of ${details.size} is above the limit of ${details.max} bytes`,
    );
    this.name = 'FrameError';
    this.kind = kind;
    Object.assign(this, details);
  }
}

/** A `Uint8Array` over `data` (a Uint8Array, an ArrayBuffer, a SharedArrayBuffer or another ArrayBufferView), not copied. */
function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (typeof SharedArrayBuffer !== 'undefined' && data instanceof SharedArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('expected bytes: a Uint8Array, an ArrayBuffer or another ArrayBufferView');
}

/** The header of `frame`: `[size, id]`, checked against the frame's length (Rust's `read_header`). */
export function readHeader(frame) {
  const bytes = asBytes(frame);
  if (bytes.length < HEADER_LEN) throw new DecodeError('ShortHeader', { len: bytes.length });
  const size = bytes[0] | (bytes[1] << 8);
  if (size !== bytes.length) throw new DecodeError('SizeMismatch', { declared: size, actual: bytes.length });
  return [size, bytes[2] | (bytes[3] << 8)];
}

/**
 * Splits received bytes into packets (Rust's `FrameDecoder`). Bytes after the last whole packet
 * are kept for the next `extend`: over TCP a packet may arrive in pieces. Over the WebSocket
 * transport every message holds whole packets, so `buffered` is 0 after each message; a transport
 * that wants to treat a cut packet as an error checks that.
 *
 * The frames handed out are views of the bytes given (nothing is copied unless a packet was cut
 * across two calls), and stay valid: the decoder never writes into them. Do not write into bytes
 * once handed over either (a WebSocket message is a fresh ArrayBuffer each time).
 */
export class FrameDecoder {
  /** @param {number} maxFrame the largest `size` accepted, clamped to [HEADER_LEN, MAX_PACKET_LEN] */
  constructor(maxFrame = MAX_PACKET_LEN) {
    const max = Number.isFinite(maxFrame) ? Math.trunc(maxFrame) : MAX_PACKET_LEN;
    this.maxFrame = Math.min(Math.max(max, HEADER_LEN), MAX_PACKET_LEN);
    this.buf = new Uint8Array(0);
    this.at = 0;
  }

  /** Bytes held that are not part of a frame handed out. */
  get buffered() {
    return this.buf.length - this.at;
  }

  /** Appends received bytes. */
  extend(data) {
    const bytes = asBytes(data);
    if (this.buffered === 0) {
      this.buf = bytes;
    } else {
      const joined = new Uint8Array(this.buffered + bytes.length);
      joined.set(this.buf.subarray(this.at));
      joined.set(bytes, this.buffered);
      this.buf = joined;
    }
    this.at = 0;
  }

  /**
   * The next whole packet (header included), `null` when more bytes are needed, or a thrown
   * `FrameError` when the stream cannot be a packet stream (it is thrown again on every call).
   */
  nextFrame() {
    if (this.buffered < 2) return null;
    const size = this.buf[this.at] | (this.buf[this.at + 1] << 8);
    if (size < HEADER_LEN) throw new FrameError('SizeTooSmall', { size });
    if (size > this.maxFrame) throw new FrameError('SizeTooLarge', { size, max: this.maxFrame });
    if (this.buffered < size) return null;
    const frame = this.buf.subarray(this.at, this.at + size);
    this.at += size;
    return frame;
  }

  /**
   * `extend(data)`, then every whole packet now held, in order:
   * `for (const frame of frames.frames(event.data)) { … ServerPacket.decode(frame) … }`.
   * A `FrameError` is thrown after the packets before the bad size were handed out.
   */
  *frames(data) {
    this.extend(data);
    for (let frame = this.nextFrame(); frame !== null; frame = this.nextFrame()) yield frame;
  }
}

/** A bounds-checked cursor over one packet's body (Rust's `Reader`). */
class Reader {
  constructor(body, packet) {
    this.bytes = body;
    this.view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    this.at = 0;
    this.packet = packet;
  }

  remaining() {
    return this.bytes.length - this.at;
  }

  take(n, field) {
    const remaining = this.remaining();
    if (remaining < n) throw new DecodeError('Truncated', { packet: this.packet, field, needed: n, remaining });
    const at = this.at;
    this.at += n;
    return at;
  }

  bool(f) { return this.view.getUint8(this.take(1, f)) !== 0; }
  u8(f) { return this.view.getUint8(this.take(1, f)); }
  i8(f) { return this.view.getInt8(this.take(1, f)); }
  u16(f) { return this.view.getUint16(this.take(2, f), true); }
  i16(f) { return this.view.getInt16(this.take(2, f), true); }
  u32(f) { return this.view.getUint32(this.take(4, f), true); }
  i32(f) { return this.view.getInt32(this.take(4, f), true); }
  u64(f) { return this.view.getBigUint64(this.take(8, f), true); }
  i64(f) { return this.view.getBigInt64(this.take(8, f), true); }
  f32(f) { return this.view.getFloat32(this.take(4, f), true); }
  f64(f) { return this.view.getFloat64(this.take(8, f), true); }

  /** A u16 byte length, then that many bytes of UTF-16LE; unpaired surrogates are refused. */
  string(field) {
    const len = this.u16(field);
    const remaining = this.remaining();
    if (len > remaining) throw new DecodeError('StringOverrun', { packet: this.packet, field, len, remaining });
    if (len % 2 !== 0) throw new DecodeError('OddStringLength', { packet: this.packet, field, len });
    const start = this.at;
    this.at += len;
    const n = len / 2;
    const units = [];
    let text = '';
    for (let i = 0; i < n; i++) {
      const unit = this.view.getUint16(start + 2 * i, true);
      if (unit >= 0xd800 && unit <= 0xdbff) {
        const next = i + 1 < n ? this.view.getUint16(start + 2 * i + 2, true) : 0;
        if (next < 0xdc00 || next > 0xdfff) {
          throw new DecodeError('UnpairedSurrogate', { packet: this.packet, field, unit });
        }
        units.push(unit, next);
        i++;
      } else if (unit >= 0xdc00 && unit <= 0xdfff) {
        throw new DecodeError('UnpairedSurrogate', { packet: this.packet, field, unit });
      } else {
        units.push(unit);
      }
      if (units.length >= 4096) {
        text += String.fromCharCode.apply(null, units);
        units.length = 0;
      }
    }
    return text + String.fromCharCode.apply(null, units);
  }

  /** A u16 count, checked against the bytes left at `minLen` each before anything is allocated. */
  list(field, minLen, get) {
    const count = this.u16(field);
    const needed = count * minLen;
    const remaining = this.remaining();
    if (needed > remaining) {
      throw new DecodeError('ListOverrun', { packet: this.packet, field, count, needed, remaining });
    }
    const items = new Array(count);
    for (let i = 0; i < count; i++) items[i] = get(this);
    return items;
  }

  finish() {
    const extra = this.remaining();
    if (extra !== 0) throw new DecodeError('TrailingBytes', { packet: this.packet, extra });
  }
}

/** Writes into a buffer of the size computed (and the values checked) beforehand. */
class Writer {
  constructor(size) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.at = 0;
  }

  bool(v) { this.view.setUint8(this.at, v ? 1 : 0); this.at += 1; }
  u8(v) { this.view.setUint8(this.at, v); this.at += 1; }
  i8(v) { this.view.setInt8(this.at, v); this.at += 1; }
  u16(v) { this.view.setUint16(this.at, v, true); this.at += 2; }
  i16(v) { this.view.setInt16(this.at, v, true); this.at += 2; }
  u32(v) { this.view.setUint32(this.at, v, true); this.at += 4; }
  i32(v) { this.view.setInt32(this.at, v, true); this.at += 4; }
  u64(v) { this.view.setBigUint64(this.at, v, true); this.at += 8; }
  i64(v) { this.view.setBigInt64(this.at, v, true); this.at += 8; }
  f32(v) { this.view.setFloat32(this.at, v, true); this.at += 4; }
  f64(v) { this.view.setFloat64(this.at, v, true); this.at += 8; }

  string(s) {
    this.u16(s.length * 2);
    for (let i = 0; i < s.length; i++) {
      this.view.setUint16(this.at, s.charCodeAt(i), true);
      this.at += 2;
    }
  }

  list(items, put) {
    this.u16(items.length);
    for (const item of items) put(this, item);
  }
}

// Checks run while the size is computed, before anything is written: an encode writes one whole
// packet or throws.

const INT_RANGES = {
  byte: [0, 0xff],
  sbyte: [-0x80, 0x7f],
  short: [-0x8000, 0x7fff],
  ushort: [0, 0xffff],
  int: [-0x80000000, 0x7fffffff],
  uint: [0, 0xffffffff],
};

function checkBool(v, packet, field) {
  if (typeof v !== 'boolean') throw new EncodeError('InvalidValue', { packet, field, expected: 'a boolean', value: v });
}

function checkInt(v, type, packet, field) {
  const [min, max] = INT_RANGES[type];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new EncodeError('InvalidValue', { packet, field, expected: `an integer in [${min}, ${max}] (${type})`, value: v });
  }
}

function checkLong(v, signed, packet, field) {
  const ok = typeof v === 'bigint' && (signed ? BigInt.asIntN(64, v) === v : BigInt.asUintN(64, v) === v);
  if (!ok) {
    const expected = signed ? 'a bigint in [-2^63, 2^63) (long)' : 'a bigint in [0, 2^64) (ulong)';
    throw new EncodeError('InvalidValue', { packet, field, expected, value: v });
  }
}

function checkFloat(v, packet, field) {
  if (typeof v !== 'number') throw new EncodeError('InvalidValue', { packet, field, expected: 'a number', value: v });
}

/** The string's size on the wire (its u16 length and UTF-16 code units), once checked. */
function stringLen(s, packet, field) {
  if (typeof s !== 'string') throw new EncodeError('InvalidValue', { packet, field, expected: 'a string', value: s });
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) throw new EncodeError('UnpairedSurrogate', { packet, field, unit });
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      throw new EncodeError('UnpairedSurrogate', { packet, field, unit });
    }
  }
  const bytes = s.length * 2;
  if (bytes > 0xffff) throw new EncodeError('StringTooLong', { packet, field, bytes });
  return 2 + bytes;
}

/** The list's size on the wire (its u16 count and its elements), once checked. */
function listLen(items, len, packet, field) {
  if (!Array.isArray(items)) throw new EncodeError('InvalidValue', { packet, field, expected: 'an array', value: items });
  if (items.length > 0xffff) throw new EncodeError('ListTooLong', { packet, field, count: items.length });
  let total = 2;
  for (const item of items) {
    if (item === null || typeof item !== 'object') {
      throw new EncodeError('InvalidValue', { packet, field, expected: 'an object (a list element)', value: item });
    }
    total += len(item, packet);
  }
  return total;
}

function encodePacket(value, id, name, len, put) {
  const size = HEADER_LEN + len(value, name);
  if (size > MAX_PACKET_LEN) throw new EncodeError('PacketTooLarge', { packet: name, size });
  const w = new Writer(size);
  w.u16(size);
  w.u16(id);
  put(w, value);
  return w.bytes;
}

function decodeBody(body, name, get) {
  const r = new Reader(body, name);
  const value = get(r);
  r.finish();
  return value;
}

/** Rust's `decode_packet`: the frame must be this packet. */
function decodePacket(frame, id, name, get) {
  const bytes = asBytes(frame);
  const [, got] = readHeader(bytes);
  if (got !== id) throw new DecodeError('UnknownPacketId', { id: got });
  return decodeBody(bytes.subarray(HEADER_LEN), name, get);
}

/** Rust's `decode::<ClientPacket>` / `decode::<ServerPacket>`: any packet of one direction. */
function decodeSet(frame, direction) {
  const bytes = asBytes(frame);
  const [, id] = readHeader(bytes);
  const entry = DECODERS[id];
  if (entry === undefined) throw new DecodeError('UnknownPacketId', { id });
  const [packet, get] = entry;
  if (packet.DIRECTION !== direction) {
    throw new DecodeError('WrongDirection', { id, packet: packet.NAME, direction: packet.DIRECTION });
  }
  return decodeBody(bytes.subarray(HEADER_LEN), packet.NAME, get);
}

// ---- Generated from the definition file.
