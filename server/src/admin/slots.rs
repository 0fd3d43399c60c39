//! The admin endpoint's connections: at most [`MAX_CONNECTIONS`] at once and
//! [`MAX_PER_ADDRESS`] from one address, and a new connection is never refused: when a limit is
//! met, the connection that has waited longest without a request being served makes room.
//!
//! Why not refuse the newcomer, as a plain limit would: then whoever holds the slots decides who
//! is served. 32 idle connections (no bytes, no token) used to take every slot, and `/healthz`
//! answered none of 119 probes, so an orchestrator would have restarted a healthy server. Now
//! holding a slot takes serving a request: a connection that sends nothing, sends its head a
//! byte at a time or idles between requests is evicted (closed) for the next newcomer, the
//! one that was quiet longest first, and a request being served (a console's feed for as long
//! as it streams) is not interrupted unless every slot is serving one. A probe is a newcomer
//! that sends its request at once: it gets a slot whatever the others do, and keeps it for the
//! microseconds its answer takes. Per address, the same rule: a source over its share evicts
//! its own oldest connection, not someone else's.
//!
//! Also, nobody holds a slot for long without a request: hyper closes a connection whose
//! request head has not arrived within [`HEAD_TIMEOUT`](super::HEAD_TIMEOUT) (idle kept-alive
//! ones too), and a refused request (wrong token, wrong `Host`) closes its connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::oneshot;

/// Connections at once (Prometheus, a few consoles and scripts need a handful; probes take a
/// slot for microseconds). More evict the longest quiet ones.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections at once from one address (an IPv6 address counts with its /64). More evict that
/// address's longest quiet ones.
pub const MAX_PER_ADDRESS: usize = 16;

/// The addresses a limit counts together: an IPv4 address, or an IPv6 /64 (what one host is
/// usually given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Source(IpAddr);

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Source(IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
            }
            v4 => Source(v4),
        }
    }
}

/// Every open connection.
#[derive(Default)]
pub(crate) struct Slots(Mutex<Table>);

#[derive(Default)]
struct Table {
    next_id: u64,
    open: Vec<Entry>,
}

struct Entry {
    id: u64,
    source: Source,
    /// Requests being served on it now.
    serving: u32,
    /// When it was accepted, or last finished serving a request.
    quiet_since: Instant,
    /// Dropping it tells the connection's task to close it.
    _evict: oneshot::Sender<()>,
}

/// What [`Slots::admit`] gives a new connection.
pub(crate) struct Admitted {
    /// Its slot: held by its task, given back when dropped.
    pub slot: Slot,
    /// Resolves when it is evicted.
    pub evicted: oneshot::Receiver<()>,
    /// Connections evicted to make room for it (0 or 1).
    pub evictions: usize,
}

impl Slots {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives a slot to a connection from `peer`, evicting one if a limit is met.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Admitted {
        let source = Source::of(peer.ip());
        let mut table = self.table();
        let from_source = table.open.iter().filter(|e| e.source == source).count();
        let victim = if from_source >= MAX_PER_ADDRESS {
            quietest(&table.open, |e| e.source == source)
        } else if table.open.len() >= MAX_CONNECTIONS {
            quietest(&table.open, |_| true)
        } else {
            None
        };
        let evictions = usize::from(victim.is_some());
        if let Some(at) = victim {
            // Dropping its sender ends its task.
            table.open.swap_remove(at);
        }
        let (tx, evicted) = oneshot::channel();
        table.next_id += 1;
        let id = table.next_id;
        table.open.push(Entry { id, source, serving: 0, quiet_since: Instant::now(), _evict: tx });
        Admitted { slot: Slot { slots: self.clone(), id }, evicted, evictions }
    }

    /// Connections open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table().open.len()
    }
}

/// The index of the connection to evict among those `eligible`: one not serving a request if
/// there is one, the one quiet longest.
fn quietest(open: &[Entry], eligible: impl Fn(&Entry) -> bool) -> Option<usize> {
    open.iter()
        .enumerate()
        .filter(|(_, e)| eligible(e))
        .min_by_key(|(_, e)| (e.serving > 0, e.quiet_since))
        .map(|(i, _)| i)
}

/// One connection's slot.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    id: u64,
}

impl Slot {
    /// Marks a request as being served until the guard is dropped.
    pub fn serving(self: &Arc<Self>) -> Serving {
        self.update(|e| e.serving += 1);
        Serving(self.clone())
    }

    fn update(&self, change: impl FnOnce(&mut Entry)) {
        if let Some(entry) = self.slots.table().open.iter_mut().find(|e| e.id == self.id) {
            change(entry);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.slots.table();
        if let Some(at) = table.open.iter().position(|e| e.id == self.id) {
            table.open.swap_remove(at);
        }
    }
}

/// A request being served on a connection (see [`Slot::serving`]).
pub(crate) struct Serving(Arc<Slot>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.update(|e| {
            e.serving = e.serving.saturating_sub(1);
            e.quiet_since = Instant::now();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str, port: u16) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), port)
    }

    #[test]
    fn a_newcomer_evicts_the_quietest_connection_not_serving() {
        let slots = Arc::new(Slots::default());
        let mut held: Vec<_> =
            (0..MAX_CONNECTIONS).map(|i| slots.admit(peer(&format!("10.0.{}.{}", i / 200, i % 200 + 1), 1))).collect();
        // The oldest is serving a request (a console's feed): it is passed over.
        let first = Arc::new(held.remove(0).slot);
        let _serving = first.serving();
        let mut second = held.remove(0);
        let newcomer = slots.admit(peer("192.0.2.1", 1));
        assert_eq!(newcomer.evictions, 1);
        assert_eq!(second.evicted.try_recv(), Err(oneshot::error::TryRecvError::Closed), "the quietest went");
        assert!(held.iter_mut().all(|a| a.evicted.try_recv() == Err(oneshot::error::TryRecvError::Empty)));
        assert_eq!(slots.len(), MAX_CONNECTIONS);
    }

    #[test]
    fn one_address_evicts_its_own_connections_only() {
        let slots = Arc::new(Slots::default());
        let mut other = slots.admit(peer("192.0.2.9", 1));
        let mut mine: Vec<_> = (0..MAX_PER_ADDRESS).map(|i| slots.admit(peer("192.0.2.1", i as u16))).collect();
        let more = slots.admit(peer("192.0.2.1", 999));
        assert_eq!(more.evictions, 1);
        assert_eq!(mine[0].evicted.try_recv(), Err(oneshot::error::TryRecvError::Closed));
        assert_eq!(other.evicted.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(slots.len(), MAX_PER_ADDRESS + 1);
        // An IPv6 /64 counts as one address.
        let v6: Vec<_> = (0..MAX_PER_ADDRESS).map(|i| slots.admit(peer(&format!("2001:db8::{i:x}"), 1))).collect();
        assert!(v6.iter().all(|a| a.evictions == 0));
        assert_eq!(slots.admit(peer("2001:db8::ffff", 1)).evictions, 1);
    }

    #[test]
    fn a_closed_connection_gives_its_slot_back() {
        let slots = Arc::new(Slots::default());
        let a = slots.admit(peer("192.0.2.1", 1));
        assert_eq!(slots.len(), 1);
        drop(a);
        assert_eq!(slots.len(), 0);
    }
}
