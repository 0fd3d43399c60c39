//! Encode and decode cost of the packets that dominate traffic: `C_Move` (every bot, 4 times a
//! second), `S_BroadcastMove` (fanned out to a whole room) and a 500-player `S_PlayerList` (every
//! join). Run with `cargo bench -p shared`; figures go in `docs/benchmarks.md`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shared::s_player_list::Player;
use shared::{
    C_Move, ClientPacket, Packet, S_BroadcastMove, S_PlayerList, ServerPacket, decode, encode, encode_to_vec,
};

fn bench_packet<P: Packet, S: shared::PacketSet>(c: &mut Criterion, label: &str, packet: P) {
    let bytes = encode_to_vec(&packet).expect("encodable");
    let mut group = c.benchmark_group(label);
    group.throughput(Throughput::Elements(1));
    let mut buf = BytesMut::with_capacity(bytes.len() * 2);
    group.bench_function("encode", |b| {
        b.iter(|| {
            buf.clear();
            encode(black_box(&packet), &mut buf).expect("encodable");
            black_box(&buf);
        })
    });
    group.bench_function("decode", |b| b.iter(|| black_box(decode::<S>(black_box(&bytes)).expect("valid"))));
    group.finish();
}

fn codec(c: &mut Criterion) {
    bench_packet::<_, ClientPacket>(c, "C_Move", C_Move { pos_x: 10.0, pos_y: 0.0, pos_z: -5.0 });
    bench_packet::<_, ServerPacket>(
        c,
        "S_BroadcastMove",
        S_BroadcastMove { player_id: 7, pos_x: 10.0, pos_y: 0.0, pos_z: -5.0 },
    );
    let players = (0..500)
        .map(|i| Player { is_self: i == 499, player_id: i + 1, pos_x: i as f32, pos_y: 0.0, pos_z: -(i as f32) })
        .collect();
    bench_packet::<_, ServerPacket>(c, "S_PlayerList_500", S_PlayerList { players });
}

criterion_group!(benches, codec);
criterion_main!(benches);
