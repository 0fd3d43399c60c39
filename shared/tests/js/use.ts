// TypeScript that uses the generated declarations as a web project would: `js_codec.rs` compiles
// it with `tsc --strict` where tsc is installed. The `@ts-expect-error` lines must stay errors.

import { S_BroadcastEnterGame, C_Move, C_Chat, C_Ping, FrameDecoder, ServerPacket, ClientPacket, S_BroadcastMove, S_PlayerList, S_Chat, DecodeError, PacketId, PACKETS, Direction } from './packets.js';
import { C_Types, S_Names } from './types.js';

const bytes: Uint8Array = new C_Move({ pos_x: 10, pos_y: 0, pos_z: -5 }).encode();
const id: 5 = C_Move.ID;
const frames = new FrameDecoder();
for (const frame of frames.frames(bytes.buffer)) {
  const p = ServerPacket.decode(frame);
  if (p instanceof S_BroadcastMove) { const n: number = p.player_id; }
  if (p instanceof S_PlayerList) { const x: boolean = p.players[0].is_self; }
  if (p instanceof S_Chat) { const s: string = p.chat; }
}
const list = new S_PlayerList({ players: [{ is_self: true, player_id: 1, pos_x: 0, pos_y: 0, pos_z: 0 }, new S_PlayerList.Player()] });
const parts: S_PlayerList[] = S_PlayerList.split(list.players);
const ping = new C_Ping({ client_time: 5n });
const t: bigint = ping.client_time;
try { ClientPacket.decode(new Uint8Array(2)); } catch (e) { if (e instanceof DecodeError) { const k = e.kind; } }
const d: Direction = Direction.ClientToServer;
const n: 5 = PacketId.C_Move;
const first: typeof S_BroadcastEnterGame = PACKETS[0];
const ty = new C_Types({ rows: [{ cells: [{ label: 'a' }] }] });
const cell: C_Types.Row.Cell = ty.rows[0].cells[0];
const names = new S_Names({ static: 1, encode__: 2, encode_: 3, i_ds: [new S_Names.ID_({ x: 1 })] });
// @ts-expect-error a long takes a bigint
new C_Ping({ client_time: 5 });
// @ts-expect-error no such field
new C_Move({ posX: 1 });
