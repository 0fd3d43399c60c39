//! Why the flush copies a frame's packets into one buffer instead of handing the socket a list
//! of them (the course's `BufferList`): a frame to one client is typically 67 `S_BroadcastMove`s
//! of 20 bytes (500 players moving 4 times a second, 30 frames a second). Both variants write
//! the same bytes to a loopback socket drained by another thread.

use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shared::{S_BroadcastMove, encode_to_vec};

fn connected_pair() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let writer = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    writer.set_nodelay(true).expect("nodelay");
    let (mut reader, _) = listener.accept().expect("accept");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
    });
    writer
}

fn gather(c: &mut Criterion) {
    let packets: Vec<Vec<u8>> = (0..67)
        .map(|i| encode_to_vec(&S_BroadcastMove { player_id: i, pos_x: 1.0, pos_y: 0.0, pos_z: -1.0 }).expect("fits"))
        .collect();
    let mut group = c.benchmark_group("flush_67_packets_of_20_bytes");
    group.throughput(Throughput::Elements(packets.len() as u64));

    let mut socket = connected_pair();
    let mut buffer = Vec::with_capacity(67 * 20);
    group.bench_function("copy_then_write", |b| {
        b.iter(|| {
            buffer.clear();
            for p in &packets {
                buffer.extend_from_slice(p);
            }
            socket.write_all(&buffer).expect("write");
        })
    });

    let mut socket = connected_pair();
    group.bench_function("writev", |b| {
        b.iter(|| {
            let mut slices: Vec<IoSlice<'_>> = packets.iter().map(|p| IoSlice::new(p)).collect();
            let mut slices = &mut slices[..];
            while !slices.is_empty() {
                let n = socket.write_vectored(slices).expect("write");
                IoSlice::advance_slices(&mut slices, n);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, gather);
criterion_main!(benches);
