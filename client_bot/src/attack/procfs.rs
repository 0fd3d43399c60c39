//! What the host's kernel says about TCP: `/proc/net/sockstat` (memory and socket counts),
//! `/proc/net/tcp` (each connection's state), `ss -m` (each socket's buffers, to tell the
//! server's side from the clients'), the page size and the kernel's per-CPU slack in counting
//! TCP memory. Parsers take text, so they are tested on captured samples.

use std::collections::{HashMap, HashSet};

/// One reading of `/proc/net/sockstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SockStat {
    /// Sockets of every kind in use (`sockets: used`).
    pub sockets_used: u64,
    /// TCP sockets in use (`TCP: inuse`): open connections and listeners.
    pub tcp_inuse: u64,
    /// TCP sockets closed by their process but still held by the kernel (`orphan`): what a
    /// graceful close of a peer that does not read leaves behind.
    pub tcp_orphan: u64,
    /// In TIME-WAIT (`tw`).
    pub tcp_tw: u64,
    /// TCP sockets allocated (`alloc`).
    pub tcp_alloc: u64,
    /// Memory the kernel holds for TCP buffers, in pages (`mem`), for the whole host: the
    /// figure the kernel compares with `net.ipv4.tcp_mem`.
    pub tcp_mem_pages: u64,
}

/// Parses `/proc/net/sockstat`; `None` when the `TCP:` line is missing or malformed.
pub fn parse_sockstat(text: &str) -> Option<SockStat> {
    let mut stat = SockStat::default();
    let mut tcp = false;
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let words: Vec<&str> = rest.split_whitespace().collect();
        // "key value key value …"
        let value = |key: &str| -> Option<u64> {
            words.chunks(2).find(|kv| kv[0] == key).and_then(|kv| kv.get(1)?.parse().ok())
        };
        match name {
            "sockets" => stat.sockets_used = value("used")?,
            "TCP" => {
                stat.tcp_inuse = value("inuse")?;
                stat.tcp_orphan = value("orphan")?;
                stat.tcp_tw = value("tw")?;
                stat.tcp_alloc = value("alloc")?;
                stat.tcp_mem_pages = value("mem")?;
                tcp = true;
            }
            _ => {}
        }
    }
    tcp.then_some(stat)
}

/// Reads `/proc/net/sockstat` now.
pub fn sockstat() -> Option<SockStat> {
    parse_sockstat(&std::fs::read_to_string("/proc/net/sockstat").ok()?)
}

/// `AT_PAGESZ` in the auxiliary vector.
const AT_PAGESZ: u64 = 6;

/// The page size from an auxiliary vector (`/proc/self/auxv`: pairs of native-endian words,
/// type then value, ending with type 0). The crate forbids `unsafe`, so `sysconf` is out.
pub fn page_size_from_auxv(auxv: &[u8]) -> Option<u64> {
    const WORD: usize = size_of::<usize>();
    let word = |chunk: &[u8]| -> u64 {
        let mut bytes = [0u8; 8];
        if cfg!(target_endian = "little") {
            bytes[..WORD].copy_from_slice(chunk);
            u64::from_le_bytes(bytes)
        } else {
            bytes[8 - WORD..].copy_from_slice(chunk);
            u64::from_be_bytes(bytes)
        }
    };
    for pair in auxv.chunks_exact(2 * WORD) {
        match word(&pair[..WORD]) {
            0 => return None,
            AT_PAGESZ => return Some(word(&pair[WORD..])),
            _ => {}
        }
    }
    None
}

/// The host's page size: what `sockstat`'s `mem` counts in. 4 KiB when it cannot be read.
pub fn page_size() -> u64 {
    std::fs::read("/proc/self/auxv").ok().and_then(|a| page_size_from_auxv(&a)).unwrap_or(4096)
}

/// How far the kernel's TCP memory figure may lag behind the sockets' real use, in pages: each
/// CPU keeps up to `net.core.mem_pcpu_rsv` pages (256 on Linux 6.x) before adding them to the
/// global count, so a figure within that of the baseline is back at it. 0 where the setting
/// does not exist (older kernels count exactly).
pub fn pcpu_slack_pages() -> u64 {
    let per_cpu: u64 = std::fs::read_to_string("/proc/sys/net/core/mem_pcpu_rsv")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    per_cpu * online_cpus()
}

/// The host's CPUs, from `/sys/devices/system/cpu/online` ("0-1,4"): every CPU keeps its own
/// reserve, whatever this process's affinity (`available_parallelism` counts only the CPUs
/// `taskset` left us).
fn online_cpus() -> u64 {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|text| parse_cpu_list(text.trim()))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u64))
}

/// Counts the CPUs in a kernel CPU list such as "0-3,6,8-9".
fn parse_cpu_list(list: &str) -> Option<u64> {
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => Some(b.parse::<u64>().ok()?.checked_sub(a.parse().ok()?)? + 1),
            None => part.parse::<u64>().ok().map(|_| 1),
        })
        .sum()
}

/// TCP state `ESTABLISHED` as `/proc/net/tcp` writes it.
pub const TCP_ESTABLISHED: u8 = 0x01;

/// TCP state `LISTEN` as `/proc/net/tcp` writes it.
pub const TCP_LISTEN: u8 = 0x0A;

/// This host's TCP connections to one port, from both ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortTable {
    /// The state of each connection whose remote port is the port, by local port: the clients'
    /// ends.
    pub clients: HashMap<u16, u8>,
    /// Whether a socket listens on the port here: the server's end is on this host, so
    /// `server_peers` can be trusted.
    pub listening: bool,
    /// The remote ports of the connections whose local port is the port: the server's ends
    /// still open, in any state.
    pub server_peers: HashSet<u16>,
}

/// Parses `/proc/net/tcp` or `/proc/net/tcp6` into the connections to `port`, from both ends.
pub fn parse_proc_net_tcp(text: &str, port: u16) -> PortTable {
    let port_of = |addr: &str| addr.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    let mut table = PortTable::default();
    for line in text.lines().skip(1) {
        // "sl local_address rem_address st …"
        let mut fields = line.split_whitespace().skip(1);
        let (Some(local), Some(remote), Some(state)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let (Some(local), Some(remote), Ok(state)) = (port_of(local), port_of(remote), u8::from_str_radix(state, 16))
        else {
            continue;
        };
        if remote == port {
            table.clients.insert(local, state);
        } else if local == port && state == TCP_LISTEN {
            table.listening = true;
        } else if local == port {
            table.server_peers.insert(remote);
        }
    }
    table
}

/// This host's connections to `port`, from both ends (IPv4 and IPv6).
pub fn tcp_table(port: u16) -> PortTable {
    let mut table = PortTable::default();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            let part = parse_proc_net_tcp(&text, port);
            table.clients.extend(part.clients);
            table.listening |= part.listening;
            table.server_peers.extend(part.server_peers);
        }
    }
    table
}

/// TCP buffer memory of the connections to one port, split by side, from `ss -m`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideMemory {
    /// Bytes held by sockets whose local port is the port (the server's side): receive queue,
    /// send queue and the memory reserved for them (`r + w + f` of `skmem`).
    pub server: u64,
    /// The same for sockets whose peer port is the port (the clients' side).
    pub clients: u64,
}

/// Parses `ss -tmnHO` (one socket a line, with `skmem:(r…,rb…,t…,tb…,f…,w…,…)`) into the memory
/// of the connections to `port`, by side. Listeners and other ports are left out.
pub fn parse_ss_memory(text: &str, port: u16) -> SideMemory {
    let port_of = |addr: &str| addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
    let mut sides = SideMemory::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(peer)) =
            (fields.get(3).and_then(|a| port_of(a)), fields.get(4).and_then(|a| port_of(a)))
        else {
            continue;
        };
        let Some(skmem) = fields.iter().find_map(|f| f.strip_prefix("skmem:(")?.strip_suffix(')')) else { continue };
        let value =
            |key: &str| -> u64 { skmem.split(',').find_map(|kv| kv.strip_prefix(key)?.parse().ok()).unwrap_or(0) };
        // `rb` and `tb` start with `r` and `t`: the exact keys are matched by parse succeeding.
        // The forward allocation goes below zero under memory pressure, and `ss` prints it as an
        // unsigned 32-bit number: read it back as signed and count only a reservation.
        let forward = i64::from(value("f") as u32 as i32).max(0) as u64;
        let bytes = value("r") + value("w") + forward;
        if local == port {
            sides.server += bytes;
        } else if peer == port {
            sides.clients += bytes;
        }
    }
    sides
}

/// The memory of this host's connections to `port`, by side; `None` without a working `ss`.
pub fn ss_memory(port: u16) -> Option<SideMemory> {
    let filter = format!("( sport = :{port} or dport = :{port} )");
    let out = std::process::Command::new("ss").args(["-tmnHO", "state", "connected", &filter]).output().ok()?;
    out.status.success().then(|| parse_ss_memory(&String::from_utf8_lossy(&out.stdout), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCKSTAT: &str = "sockets: used 2130\n\
        TCP: inuse 1052 orphan 3 tw 17 alloc 1060 mem 93750\n\
        UDP: inuse 0 mem 0\n\
        UDPLITE: inuse 0\n\
        RAW: inuse 0\n\
        FRAG: inuse 0 memory 0\n";

    #[test]
    fn reads_the_tcp_line_and_the_socket_count() {
        let s = parse_sockstat(SOCKSTAT).unwrap();
        assert_eq!(
            s,
            SockStat {
                sockets_used: 2130,
                tcp_inuse: 1052,
                tcp_orphan: 3,
                tcp_tw: 17,
                tcp_alloc: 1060,
                tcp_mem_pages: 93_750
            }
        );
        // The UDP line's `mem` is not TCP's.
        assert_ne!(s.tcp_mem_pages, 0);
    }

    #[test]
    fn a_sockstat_without_a_whole_tcp_line_is_refused() {
        assert_eq!(parse_sockstat("sockets: used 3\nUDP: inuse 0 mem 0\n"), None);
        assert_eq!(parse_sockstat("sockets: used 3\nTCP: inuse 1 orphan 0 tw 0 alloc 1\n"), None);
        assert_eq!(parse_sockstat("sockets: used 3\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem lots\n"), None);
    }

    #[test]
    fn this_host_has_a_sockstat() {
        // The attack runs on Linux; a parser that cannot read the real file is useless.
        let s = sockstat().expect("/proc/net/sockstat parses");
        assert!(s.sockets_used > 0);
    }

    fn auxv(pairs: &[(usize, usize)]) -> Vec<u8> {
        pairs.iter().flat_map(|(k, v)| k.to_ne_bytes().into_iter().chain(v.to_ne_bytes())).collect()
    }

    #[test]
    fn the_page_size_comes_from_the_auxiliary_vector() {
        assert_eq!(page_size_from_auxv(&auxv(&[(33, 0x7fff), (6, 16384), (0, 0)])), Some(16384));
        assert_eq!(page_size_from_auxv(&auxv(&[(33, 0x7fff), (0, 0), (6, 16384)])), None, "after the end");
        assert_eq!(page_size_from_auxv(&[]), None);
        let real = page_size();
        assert!(real >= 4096 && real.is_power_of_two(), "{real}");
    }

    #[test]
    fn socket_memory_is_split_into_the_servers_side_and_the_clients() {
        let text = "ESTAB 0 0 127.0.0.1:7777 127.0.0.1:50000 skmem:(r0,rb131072,t0,tb262144,f4096,w262000,o0,bl0,d0)\n\
            ESTAB 150000 0 127.0.0.1:50000 127.0.0.1:7777 skmem:(r159125,rb158125,t0,tb3939840,f4715,w0,o0,bl0,d0)\n\
            ESTAB 0 0 [::1]:7777 [::1]:50001 skmem:(r100,rb131072,t5,tb262144,f0,w10,o0,bl0,d0)\n\
            LISTEN 0 4096 127.0.0.1:7777 0.0.0.0:* skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0)\n\
            ESTAB 0 0 127.0.0.1:22 127.0.0.1:40000 skmem:(r999,rb1,t0,tb1,f0,w999,o0,bl0,d0)\n\
            ESTAB 0 0 127.0.0.1:50002 127.0.0.1:7777 skmem:(r4000,rb8192,t0,tb8192,f4294963200,w0,o0,bl0,d0)\n\
            garbage line\n";
        let sides = parse_ss_memory(text, 7777);
        // The last client's forward allocation is -4096 (under memory pressure): not counted.
        assert_eq!(sides, SideMemory { server: 4096 + 262_000 + 100 + 10, clients: 159_125 + 4715 + 4000 });
        assert_eq!(parse_ss_memory("", 7777), SideMemory::default());
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list(""), None);
    }

    #[test]
    fn connections_to_a_port_from_both_ends() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:1E61 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0\n\
            1: 0100007F:C350 0100007F:1E61 01 00000000:0001F000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1\n\
            2: 0100007F:C351 0100007F:1E61 08 00000000:00000001 00:00000000 00000000  1000        0 3 1 0 20 4 30 10 -1\n\
            3: 0100007F:1E61 0100007F:C350 01 00030000:00000000 01:00000014 00000000  1000        0 4 1 0 20 4 30 10 -1\n\
            4: 0100007F:C352 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 5 1 0 20 4 30 10 -1\n";
        // Port 0x1E61 = 7777: the listener, and the server's end of 0xC350.
        let table = parse_proc_net_tcp(text, 7777);
        assert_eq!(table.clients, HashMap::from([(0xC350, TCP_ESTABLISHED), (0xC351, 0x08)]));
        assert!(table.listening);
        assert_eq!(table.server_peers, HashSet::from([0xC350]));
        let v6 = "  sl  local_address                         remote_address                        st\n\
            0: 00000000000000000000000001000000:C360 00000000000000000000000001000000:1E61 01 0:0 0:0 0 0 0 1\n";
        let table = parse_proc_net_tcp(v6, 7777);
        assert_eq!(table.clients, HashMap::from([(0xC360, TCP_ESTABLISHED)]));
        assert!(!table.listening && table.server_peers.is_empty());
    }
}
