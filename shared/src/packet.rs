//! The traits every generated packet implements, and the ones that let I/O code stay generic over
//! the packet set.

use std::fmt;

use bytes::BufMut;

use crate::{DecodeError, EncodeError, Reader};

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `C_…` packets: client → server.
    ClientToServer,
    /// `S_…` packets: server → client.
    ServerToClient,
}

impl Direction {
    /// The other way.
    pub const fn reverse(self) -> Self {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::ClientToServer => "client → server",
            Direction::ServerToClient => "server → client",
        })
    }
}

/// Something with a wire layout: a packet's body or a list element. Implemented by generated code.
pub trait WireFormat: Sized {
    /// The fewest bytes any value encodes to. A list count is checked against it before anything
    /// is allocated, so a forged count cannot make the decoder reserve memory the packet does not
    /// hold.
    const MIN_LEN: usize;
    /// The exact encoded size when it never varies (no strings, no lists): lists of such elements
    /// are sized with one multiplication.
    const FIXED_LEN: Option<usize>;

    /// The encoded size of the fields, or why they cannot be encoded (a string or list too long
    /// for its u16 length).
    fn wire_len(&self) -> Result<usize, EncodeError>;

    /// Writes the fields. Only called after [`wire_len`](Self::wire_len) succeeded, so it cannot
    /// fail and never writes half a packet.
    fn encode_fields<B: BufMut>(&self, buf: &mut B);

    /// Reads the fields; every read is bounds-checked.
    fn decode_fields(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// One packet type of the definition file. Implemented by generated code.
pub trait Packet: WireFormat + fmt::Debug + Clone + PartialEq + Send + Sync + 'static {
    /// The id in the header: the packet's position in the definition file.
    const ID: u16;
    /// The name in the definition file (`C_Move`).
    const NAME: &'static str;
    /// Which way it travels.
    const DIRECTION: Direction;
    /// The packet set of its direction ([`ClientPacket`](crate::ClientPacket) for `C_` packets,
    /// [`ServerPacket`](crate::ServerPacket) for `S_` packets): what lets the network plugin
    /// refuse, at compile time, to send a packet the wrong way.
    type Set: PacketSet + From<Self>;
}

/// All packets of one direction, as one enum (`ClientPacket`, `ServerPacket`): what a reader
/// decodes into and hands on. Implemented by generated code.
///
/// I/O code (the `net_plugin` crate) is generic over this trait, so adding a packet to the
/// definitions needs no change there.
pub trait PacketSet: fmt::Debug + Send + Sync + Sized + 'static {
    /// The direction every member travels.
    const DIRECTION: Direction;

    /// The id of the packet held.
    fn id(&self) -> u16;

    /// The name of the packet held.
    fn name(&self) -> &'static str;

    /// Decodes the body (header removed) of the packet with this `id`.
    fn decode_body(id: u16, body: &[u8]) -> Result<Self, DecodeError>;

    /// The encoded size of the packet held, header included.
    fn wire_len(&self) -> Result<usize, EncodeError>;

    /// Encodes the packet held, header included; returns the bytes written.
    fn encode<B: BufMut>(&self, buf: &mut B) -> Result<usize, EncodeError>;

    /// Hands the packet held to `visitor` as its concrete type.
    fn visit<V: PacketVisitor>(self, visitor: &mut V);

    /// Calls `visitor` once for every packet type of the set, in id order.
    fn visit_types<V: PacketTypeVisitor>(visitor: &mut V);
}

/// Receives a packet as its concrete type, from [`PacketSet::visit`]: how generic code (the
/// network plugin) turns a decoded packet into a typed message without knowing the packet list.
pub trait PacketVisitor {
    /// Called with the packet.
    fn visit<P: Packet>(&mut self, packet: P);
}

/// Receives each packet type of a set, from [`PacketSet::visit_types`]: how generic code
/// registers one message type per packet.
pub trait PacketTypeVisitor {
    /// Called once per packet type.
    fn visit<P: Packet>(&mut self);
}
