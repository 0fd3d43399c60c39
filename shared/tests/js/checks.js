// The JavaScript codec's checks, run in headless Chromium by `shared/tests/js_codec_browser.rs`
// (and by hand under Node: see that file). The expected bytes are PROTOCOL.md's golden bytes and
// others worked out by hand from its layout; none come from the Rust encoder.
//
// `packets.js` is the codec generated from assets/PDL.xml; `stage1.js` from the course's
// earlier-stage file (shared/tests/pdl/stage1.xml: nested lists, strings, byte, long, short);
// `types.js` from the test's own file of every field type and the names JavaScript escapes.

import * as P from './packets.js';
import * as S from './stage1.js';
import * as T from './types.js';

const hex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(' ');
const bytes = (text) => Uint8Array.from(text.replace(/\|/g, ' ').split(/\s+/).filter((h) => h !== ''), (h) => parseInt(h, 16));
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

function eq(actual, expected, what) {
  const a = typeof actual === 'bigint' ? `${actual}n` : JSON.stringify(actual, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
  const e = typeof expected === 'bigint' ? `${expected}n` : JSON.stringify(expected, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
  if (a !== e) throw new Error(`${what}: got ${a}, expected ${e}`);
}

/** Calls `f`, which must throw an instance of `type` with this `kind` (and message, when given). */
function throws(f, type, kind, message) {
  try {
    f();
  } catch (e) {
    if (!(e instanceof type)) throw new Error(`threw ${e && e.name}: ${e && e.message}; expected a ${type.name} ${kind}`);
    eq(e.kind, kind, `the ${type.name}'s kind (${e.message})`);
    if (message !== undefined) eq(e.message, message, `the ${type.name}'s message`);
    return e;
  }
  throw new Error(`did not throw; expected a ${type.name} ${kind}`);
}

// PROTOCOL.md, "Golden bytes (hex)".
const GOLDEN = {
  move: bytes('10 00 05 00 00 00 20 41 00 00 00 00 00 00 A0 C0'),
  broadcastMove: bytes('14 00 06 00 07 00 00 00 00 00 20 41 00 00 00 00 00 00 A0 C0'),
  leave: bytes('04 00 02 00'),
  playerList: bytes(
    '28 00 04 00 02 00 | 00 01 00 00 00 00 00 40 40 00 00 00 00 00 00 80 40 | 01 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
  ),
  chat: bytes('0A 00 07 00 04 00 48 00 69 00'),
};

const checks = [];
const check = (name, f) => checks.push([name, f]);

check('the ids are the file positions, as in PROTOCOL.md', () => {
  eq({ ...P.PacketId }, {
    S_BroadcastEnterGame: 1, C_LeaveGame: 2, S_BroadcastLeaveGame: 3, S_PlayerList: 4, C_Move: 5,
    S_BroadcastMove: 6, C_Chat: 7, S_Chat: 8, C_Ping: 9, S_Pong: 10,
  }, 'PacketId');
  P.PACKETS.forEach((packet, i) => eq([packet.ID, P.PacketId[packet.NAME]], [i + 1, i + 1], packet.NAME));
  eq([P.C_Move.DIRECTION, P.S_Chat.DIRECTION], ['ClientToServer', 'ServerToClient'], 'directions');
  eq(P.ClientPacket.packets.map((p) => p.NAME), ['C_LeaveGame', 'C_Move', 'C_Chat', 'C_Ping'], 'ClientPacket');
  eq(P.ServerPacket.packets.length, 6, 'ServerPacket');
  eq([P.HEADER_LEN, P.MAX_PACKET_LEN, P.S_PlayerList.MAX_PLAYERS], [4, 65535, 3854], 'limits');
});

check('C_Move{10, 0, -5}: golden bytes both ways', () => {
  eq(hex(new P.C_Move({ pos_x: 10, pos_y: 0, pos_z: -5 }).encode()), hex(GOLDEN.move), 'encode');
  const m = P.C_Move.decode(GOLDEN.move);
  if (!(m instanceof P.C_Move)) throw new Error('not a C_Move');
  eq([m.pos_x, m.pos_y, m.pos_z], [10, 0, -5], 'decode');
  eq(P.ClientPacket.decode(GOLDEN.move.buffer.slice(0)).pos_x, 10, 'from an ArrayBuffer, as a set');
});

check('S_BroadcastMove{7, 10, 0, -5}: golden bytes both ways', () => {
  eq(hex(new P.S_BroadcastMove({ player_id: 7, pos_x: 10, pos_y: 0, pos_z: -5 }).encode()), hex(GOLDEN.broadcastMove), 'encode');
  const m = P.ServerPacket.decode(GOLDEN.broadcastMove);
  if (!(m instanceof P.S_BroadcastMove)) throw new Error('not an S_BroadcastMove');
  eq({ ...m }, { player_id: 7, pos_x: 10, pos_y: 0, pos_z: -5 }, 'decode');
});

check('C_LeaveGame: golden bytes both ways', () => {
  eq(hex(new P.C_LeaveGame().encode()), hex(GOLDEN.leave), 'encode');
  if (!(P.ClientPacket.decode(GOLDEN.leave) instanceof P.C_LeaveGame)) throw new Error('not a C_LeaveGame');
});

check('S_PlayerList of two: golden bytes both ways', () => {
  const players = [
    { is_self: false, player_id: 1, pos_x: 3, pos_y: 0, pos_z: 4 },
    new P.S_PlayerList.Player({ is_self: true, player_id: 2 }),
  ];
  eq(hex(new P.S_PlayerList({ players }).encode()), hex(GOLDEN.playerList), 'encode');
  const list = P.S_PlayerList.decode(GOLDEN.playerList);
  if (!list.players.every((p) => p instanceof P.S_PlayerList.Player)) throw new Error('elements are not Players');
  eq(list.players.map((p) => ({ ...p })), [
    { is_self: false, player_id: 1, pos_x: 3, pos_y: 0, pos_z: 4 },
    { is_self: true, player_id: 2, pos_x: 0, pos_y: 0, pos_z: 0 },
  ], 'decode');
  eq(P.S_PlayerList.split(new Array(3855).fill(players[0])).map((p) => p.players.length), [3854, 1], 'split');
});

check('C_Chat{"Hi"}: golden bytes both ways (UTF-16LE, byte length)', () => {
  eq(hex(new P.C_Chat({ chat: 'Hi' }).encode()), hex(GOLDEN.chat), 'encode');
  eq(P.C_Chat.decode(GOLDEN.chat).chat, 'Hi', 'decode');
});

check('S_Chat{1, "é😀"}: a surrogate pair, by hand', () => {
  const expected = bytes('10 00 08 00 01 00 00 00 06 00 E9 00 3D D8 00 DE');
  eq(hex(new P.S_Chat({ player_id: 1, chat: 'é😀' }).encode()), hex(expected), 'encode');
  eq(P.S_Chat.decode(expected).chat, 'é😀', 'decode');
});

check('C_Ping / S_Pong: long is a bigint', () => {
  const expected = bytes('0C 00 09 00 FE FF FF FF FF FF FF FF');
  eq(hex(new P.C_Ping({ client_time: -2n }).encode()), hex(expected), 'encode');
  eq(P.C_Ping.decode(expected).client_time, -2n, 'decode');
});

check('stage1 C_PlayerInfoReq: nested lists, as worked out in tests/generator.rs', () => {
  const expected = bytes(`25 00 01 00  01  E9 03 00 00 00 00 00 00  04 00 41 00 42 00  01 00
    65 00 00 00  01 00  00 00 40 40  01 00  4D 00 00 00`);
  const packet = new S.C_PlayerInfoReq({
    test_byte: 1, player_id: 1001n, name: 'AB',
    skills: [{ id: 101, level: 1, duration: 3, attributes: [{ att: 77 }] }],
  });
  eq(hex(packet.encode()), hex(expected), 'encode');
  const back = S.ClientPacket.decode(expected);
  if (!(back.skills[0].attributes[0] instanceof S.C_PlayerInfoReq.Skill.Attribute)) throw new Error('nested class');
  eq(back.skills[0].attributes[0].att, 77, 'decode');
  eq(hex(back.encode()), hex(expected), 're-encode');
});

check('every field type at its limits, by hand', () => {
  const expected = bytes(`3D 00 01 00  01  FF  80  00 80  FF FF  00 00 00 80  FF FF FF FF
    00 00 00 00 00 00 00 80  FF FF FF FF FF FF FF FF  00 00 C0 3F  00 00 00 00 00 00 02 C0
    02 00 41 00  01 00 02 00 00 00 02 00 7A 00`);
  const value = {
    flag: true, b: 255, sb: -128, s: -32768, us: 65535, i: -2147483648, ui: 4294967295,
    l: -(2n ** 63n), ul: 2n ** 64n - 1n, f: 1.5, d: -2.25, text: 'A',
    rows: [{ cells: [{ label: '' }, { label: 'z' }] }],
  };
  eq(hex(new T.C_Types(value).encode()), hex(expected), 'encode');
  const back = T.C_Types.decode(expected);
  eq({ ...back, rows: back.rows.map((r) => ({ cells: r.cells.map((c) => ({ ...c })) })) }, value, 'decode');
});

check('names JavaScript escapes', () => {
  const expected = bytes('1F 00 02 00 01 00 00 00 02 00 00 00 03 00 00 00 04 00 00 00 05 00 00 00 06 00 00 00 01 00 09');
  const packet = new T.S_Names({ encode__: 1, constructor_: 2, __proto___: 3, static: 4, type: 5, encode_: 6, i_ds: [{ x: 9 }] });
  eq(hex(packet.encode()), hex(expected), 'encode');
  const back = T.S_Names.decode(expected);
  eq([back.encode__, back.constructor_, back.__proto___, back.static, back.type, back.encode_, back.i_ds[0].x],
    [1, 2, 3, 4, 5, 6, 9], 'decode');
  if (!(back.i_ds[0] instanceof T.S_Names.ID_) || T.S_Names.ID !== 2) throw new Error('ID_ and ID');
});

check('the frame reader splits one message of four packets', () => {
  const message = concat(GOLDEN.move, GOLDEN.broadcastMove, GOLDEN.leave, GOLDEN.chat);
  const frames = new P.FrameDecoder();
  eq([...frames.frames(message)].map(hex), [GOLDEN.move, GOLDEN.broadcastMove, GOLDEN.leave, GOLDEN.chat].map(hex), 'frames');
  eq(frames.buffered, 0, 'nothing left');
});

check('a packet cut across two messages is kept for the next one', () => {
  const stream = concat(GOLDEN.move, GOLDEN.broadcastMove, GOLDEN.leave, GOLDEN.chat);
  for (const cut of [1, 3, 16, 17, 23, 35, 36, 37, stream.length - 1]) {
    const frames = new P.FrameDecoder();
    const first = [...frames.frames(stream.subarray(0, cut))];
    const held = frames.buffered;
    const second = [...frames.frames(stream.buffer.slice(cut))];
    eq(first.concat(second).map(hex), [GOLDEN.move, GOLDEN.broadcastMove, GOLDEN.leave, GOLDEN.chat].map(hex), `cut at ${cut}`);
    eq(held + first.reduce((n, f) => n + f.length, 0), cut, `held after the cut at ${cut}`);
    eq(frames.buffered, 0, `nothing left after the cut at ${cut}`);
  }
});

check('bad sizes are FrameErrors, after the good packets', () => {
  const frames = new P.FrameDecoder(100);
  const got = [];
  throws(() => {
    for (const f of frames.frames(concat(GOLDEN.leave, bytes('03 00 02 00')))) got.push(hex(f));
  }, P.FrameError, 'SizeTooSmall', 'a packet size of 3 is smaller than the 4-byte header');
  eq(got, [hex(GOLDEN.leave)], 'the packet before');
  throws(() => frames.nextFrame(), P.FrameError, 'SizeTooSmall');
  throws(() => [...new P.FrameDecoder().frames(bytes('00 00'))], P.FrameError, 'SizeTooSmall');
  throws(() => [...new P.FrameDecoder(100).frames(bytes('65 00'))], P.FrameError, 'SizeTooLarge',
    'a packet size of 101 is above the limit of 100 bytes');
});

check('bad packets are DecodeErrors, with the Rust decoder\'s messages', () => {
  throws(() => P.ClientPacket.decode(bytes('04 00 02')), P.DecodeError, 'ShortHeader', '3 bytes are too few for the 4-byte packet header');
  throws(() => P.C_Move.decode(GOLDEN.move.subarray(0, 15)), P.DecodeError, 'SizeMismatch', 'the header says 16 bytes but the packet has 15');
  throws(() => P.ClientPacket.decode(bytes('04 00 00 00')), P.DecodeError, 'UnknownPacketId', 'unknown packet id 0');
  throws(() => P.ServerPacket.decode(bytes('04 00 E7 03')), P.DecodeError, 'UnknownPacketId', 'unknown packet id 999');
  throws(() => P.C_Move.decode(GOLDEN.chat), P.DecodeError, 'UnknownPacketId', 'unknown packet id 7');
  throws(() => P.ClientPacket.decode(GOLDEN.broadcastMove), P.DecodeError, 'WrongDirection',
    'S_BroadcastMove (id 6) travels server → client; it is not accepted from this side');
  throws(() => P.C_Move.decode(bytes('0C 00 05 00 00 00 20 41 00 00 00 00')), P.DecodeError, 'Truncated',
    'C_Move.posZ: needs 4 bytes, only 0 left in the packet');
  throws(() => P.C_Chat.decode(bytes('08 00 07 00 06 00 48 00')), P.DecodeError, 'StringOverrun',
    'C_Chat.chat: a string of 6 bytes runs past the packet (2 bytes left)');
  throws(() => P.C_Chat.decode(bytes('09 00 07 00 03 00 48 00 69')), P.DecodeError, 'OddStringLength',
    'C_Chat.chat: a string byte length of 3 is odd; UTF-16 comes in 2-byte units');
  throws(() => P.C_Chat.decode(bytes('08 00 07 00 02 00 00 D8')), P.DecodeError, 'UnpairedSurrogate',
    'C_Chat.chat: unpaired UTF-16 surrogate 0xd800');
  throws(() => P.C_Chat.decode(bytes('0A 00 07 00 04 00 3D D8 41 00')), P.DecodeError, 'UnpairedSurrogate');
  throws(() => P.C_Chat.decode(bytes('08 00 07 00 02 00 00 DE')), P.DecodeError, 'UnpairedSurrogate');
  throws(() => P.S_PlayerList.decode(concat(bytes('17 00 04 00 03 00'), GOLDEN.playerList.subarray(6, 23))), P.DecodeError,
    'ListOverrun', 'S_PlayerList.player: a list of 3 elements needs at least 51 bytes, only 17 left');
  throws(() => P.ClientPacket.decode(bytes('05 00 02 00 00')), P.DecodeError, 'TrailingBytes',
    'C_LeaveGame: 1 bytes left over after the last field');
});

check('what is not bytes is a TypeError', () => {
  for (const notBytes of ['10 00 05 00', [4, 0, 2, 0], null]) {
    try {
      P.ClientPacket.decode(notBytes);
      throw new Error(`${JSON.stringify(notBytes)} was decoded`);
    } catch (e) {
      if (!(e instanceof TypeError)) throw e;
    }
  }
});

check('values a field cannot hold are EncodeErrors, and nothing is encoded', () => {
  throws(() => new P.C_Move({ pos_x: '1' }).encode(), P.EncodeError, 'InvalidValue', 'C_Move.posX: expected a number, got the string "1"');
  throws(() => new P.S_BroadcastLeaveGame({ player_id: 2 ** 31 }).encode(), P.EncodeError, 'InvalidValue');
  throws(() => new P.S_BroadcastLeaveGame({ player_id: 1.5 }).encode(), P.EncodeError, 'InvalidValue');
  throws(() => new P.C_Ping({ client_time: 5 }).encode(), P.EncodeError, 'InvalidValue');
  throws(() => new P.C_Ping({ client_time: 2n ** 63n }).encode(), P.EncodeError, 'InvalidValue');
  throws(() => new P.S_PlayerList({ players: [{ is_self: 1 }] }).encode(), P.EncodeError, 'InvalidValue');
  throws(() => new P.S_PlayerList({ players: [null] }).encode(), P.EncodeError, 'InvalidValue');
  throws(() => new P.C_Chat({ chat: '\ud800' }).encode(), P.EncodeError, 'UnpairedSurrogate');
  throws(() => new P.C_Chat({ chat: 'x'.repeat(32768) }).encode(), P.EncodeError, 'StringTooLong',
    'C_Chat.chat: a string of 65536 UTF-16 bytes does not fit its u16 length');
  throws(() => new P.S_Chat({ chat: 'x'.repeat(32765) }).encode(), P.EncodeError, 'PacketTooLarge',
    "S_Chat would be 65540 bytes, more than the 65,535 a packet's u16 size can hold");
  throws(() => new P.S_PlayerList({ players: new Array(65536).fill({}) }).encode(), P.EncodeError, 'ListTooLong');
  eq(new P.C_Chat({ chat: 'x'.repeat(32764) }).encode().length, 65534, 'the longest chat fits');
});

/**
 * Runs every check: `{ passed: [names], failed: [[name, message]] }`. `rust` holds frames the Rust
 * decoder judged, `[[hex, direction, verdict]]`: each is decoded here too and the verdicts compared.
 */
export function run(rust = []) {
  const passed = [];
  const failed = [];
  for (const [name, f] of checks) {
    try {
      f();
      passed.push(name);
    } catch (e) {
      failed.push([name, String(e && e.stack ? e.stack : e)]);
    }
  }
  const mismatches = [];
  for (const [frame, direction, verdict] of rust) {
    const set = direction === 'ClientToServer' ? P.ClientPacket : P.ServerPacket;
    let ours;
    try {
      ours = `ok ${set.decode(bytes(frame)).constructor.NAME}`;
    } catch (e) {
      ours = e instanceof P.DecodeError ? e.message : `${e.name}: ${e.message}`;
    }
    if (ours !== verdict) mismatches.push([frame, direction, verdict, ours]);
  }
  if (rust.length > 0) {
    if (mismatches.length === 0) passed.push(`${rust.length} frames judged as the Rust decoder does`);
    else failed.push([`frames judged unlike the Rust decoder (${mismatches.length} of ${rust.length})`, JSON.stringify(mismatches.slice(0, 5))]);
  }
  return { passed, failed };
}
