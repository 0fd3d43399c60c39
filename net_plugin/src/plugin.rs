//! The ECS half shared by the server and client plugins: messages, the system that turns I/O
//! events into them, the flush, and cleanup.

use std::marker::PhantomData;
use std::sync::Arc;

use bevy_app::{App, AppExit, Last, Plugin, PreUpdate};
use bevy_ecs::message::MessageReader;
use bevy_ecs::prelude::*;
use crossbeam_channel::Receiver;
use shared::{Packet, PacketSet, PacketTypeVisitor, PacketVisitor};

use crate::connection::{PendingDespawn, SessionEntry, SessionIndex};
use crate::events::{self, InFlight, IoEvent};
use crate::outbox::{BacklogCap, FlushQueue, OutboundDirection, flush};
use crate::runtime::IoRuntime;
use crate::session::SessionContext;
use crate::stats::IoCounters;
use crate::{BindError, NetConfig};
use crate::{
    ConnectFailed, Connected, Connecting, Connection, DisconnectReason, Disconnected, NetStats, OutboundBuffer,
    Received,
};

/// Where the plugin's systems run. Order game systems against these.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetSystems {
    /// In `PreUpdate`: drains the I/O threads' events and writes [`Connected`],
    /// [`Received`] and [`Disconnected`] messages, spawning connection entities. Systems in
    /// `PreUpdate` that read those messages go `.after(NetSystems::Receive)`; later schedules
    /// see them anyway.
    Receive,
    /// In `Last`: hands every connection's frame buffer to the I/O side, once, and wakes the
    /// writer task once for all of them. Everything sent before it goes out this frame.
    Send,
    /// In `Last`, after [`NetSystems::Send`]: despawns the entities of sessions that ended this
    /// frame, and shuts the network down gracefully on [`AppExit`].
    Cleanup,
}

/// The events from the I/O threads, drained once a frame.
#[derive(Resource)]
pub(crate) struct Inbox<In> {
    pub rx: Receiver<IoEvent<In>>,
    pub counters: Arc<IoCounters>,
    /// Packets in the channel, decremented as they are drained.
    pub in_flight: Arc<InFlight>,
}

/// The I/O side of either plugin, started but not yet installed in an app.
pub(crate) struct IoStart<In> {
    pub runtime: IoRuntime,
    pub inbox: Inbox<In>,
    pub cx: Arc<SessionContext<In>>,
}

impl<In: PacketSet> IoStart<In> {
    /// Checks the configuration and starts the I/O threads (named `thread_name`) and the event
    /// channel.
    pub fn new(thread_name: &'static str, config: NetConfig) -> Result<Self, BindError> {
        config.validate().map_err(BindError::Config)?;
        let counters = Arc::new(IoCounters::default());
        let runtime = IoRuntime::start(thread_name, config.io_threads, config.shutdown_timeout, counters.clone())
            .map_err(BindError::Runtime)?;
        let (events, rx, in_flight) = events::channel(config.inbound_queue, counters.clone());
        let cx = Arc::new(SessionContext {
            config,
            events,
            counters: counters.clone(),
            registry: runtime.registry().clone(),
        });
        Ok(Self { runtime, inbox: Inbox { rx, counters, in_flight }, cx })
    }

    /// Hands the runtime and the channel to the app, with the systems and messages both sides
    /// share.
    pub fn install(self, app: &mut App) {
        let outbound_backlog = self.cx.config.outbound_backlog;
        app.insert_resource(FlushQueue(self.runtime.flusher().clone()))
            .insert_resource(self.runtime)
            .insert_resource(self.inbox)
            .add_plugins(NetCorePlugin::<In> { outbound_backlog, _in: PhantomData });
    }
}

/// Adds everything both sides share. Added by [`ServerPlugin`](crate::ServerPlugin) and
/// [`ClientPlugin`](crate::ClientPlugin); not used directly.
struct NetCorePlugin<In: PacketSet> {
    outbound_backlog: usize,
    _in: PhantomData<fn() -> In>,
}

struct RegisterMessages<'a>(&'a mut App);

impl PacketTypeVisitor for RegisterMessages<'_> {
    fn visit<P: Packet>(&mut self) {
        self.0.add_message::<Received<P>>();
    }
}

impl<In: PacketSet> Plugin for NetCorePlugin<In> {
    fn build(&self, app: &mut App) {
        if app.world().contains_resource::<OutboundDirection>() {
            // A programming error, found at startup: one application is a server or a client.
            panic!("an application runs either the ServerPlugin or the ClientPlugin, not both");
        }
        In::visit_types(&mut RegisterMessages(app));
        app.add_message::<Connected>()
            .add_message::<Disconnected>()
            .add_message::<ConnectFailed>()
            .add_message::<AppExit>()
            .insert_resource(OutboundDirection(In::DIRECTION.reverse()))
            .insert_resource(BacklogCap(self.outbound_backlog))
            .init_resource::<SessionIndex>()
            .init_resource::<PendingDespawn>()
            .init_resource::<NetStats>()
            .configure_sets(Last, NetSystems::Cleanup.after(NetSystems::Send))
            .add_systems(PreUpdate, receive::<In>.in_set(NetSystems::Receive))
            .add_systems(Last, flush.in_set(NetSystems::Send))
            .add_systems(Last, (despawn_ended, shutdown_on_exit).chain().in_set(NetSystems::Cleanup));
    }
}

/// Writes decoded packets as their own message types. Consecutive packets of one type (a
/// client's moves, a room's broadcast) are written as one batch: one resource lookup per run
/// instead of one per packet.
struct Deliver<'w> {
    world: &'w mut World,
    from: Entity,
    at: std::time::Instant,
    /// The run of same-typed messages not written yet.
    run: Option<Run>,
}

/// A run of `Received<P>` for one `P`, type-erased so one visitor serves every packet type.
struct Run {
    packet: std::any::TypeId,
    messages: Box<dyn std::any::Any>,
    write: fn(&mut World, Box<dyn std::any::Any>),
}

fn write_run<P: Packet>(world: &mut World, messages: Box<dyn std::any::Any>) {
    if let Ok(messages) = messages.downcast::<Vec<Received<P>>>() {
        world.write_message_batch(*messages);
    }
}

impl Deliver<'_> {
    /// Writes the pending run.
    fn finish(&mut self) {
        if let Some(run) = self.run.take() {
            (run.write)(self.world, run.messages);
        }
    }
}

impl PacketVisitor for Deliver<'_> {
    fn visit<P: Packet>(&mut self, packet: P) {
        let message = Received { from: self.from, packet, at: self.at };
        if let Some(run) = &mut self.run
            && run.packet == std::any::TypeId::of::<P>()
            && let Some(messages) = run.messages.downcast_mut::<Vec<Received<P>>>()
        {
            messages.push(message);
            return;
        }
        self.finish();
        self.run =
            Some(Run { packet: std::any::TypeId::of::<P>(), messages: Box::new(vec![message]), write: write_run::<P> });
    }
}

/// Drains the events queued by the I/O threads (as many as were there when it started, so a
/// flood cannot hold the frame) and turns them into entities and messages.
fn receive<In: PacketSet>(world: &mut World, mut batch: Local<Vec<IoEvent<In>>>) {
    let (counters, in_flight) = {
        let inbox = world.resource::<Inbox<In>>();
        let queued = inbox.rx.len();
        batch.extend(inbox.rx.try_iter().take(queued));
        (inbox.counters.clone(), inbox.in_flight.clone())
    };
    world.resource_scope(|world, mut index: Mut<SessionIndex>| {
        world.resource_scope(|world, mut stats: Mut<NetStats>| {
            for event in batch.drain(..) {
                handle_event(world, &mut index, &mut stats, &in_flight, event);
            }
            stats.absorb(&counters);
        });
    });
}

fn handle_event<In: PacketSet>(
    world: &mut World,
    index: &mut SessionIndex,
    stats: &mut NetStats,
    in_flight: &InFlight,
    event: IoEvent<In>,
) {
    match event {
        IoEvent::Packets { id, packets, at } => {
            let n = packets.len();
            in_flight.drained(n);
            match index.get(id) {
                Some(SessionEntry { entity, link: Some(link) }) if !link.is_closed() => {
                    let mut deliver = Deliver { world, from: *entity, at, run: None };
                    for packet in packets {
                        packet.visit(&mut deliver);
                    }
                    deliver.finish();
                    stats.packets_in += n as u64;
                }
                _ => stats.packets_dropped += n as u64,
            }
        }
        IoEvent::Connected { id, peer, link } => {
            let components = (Connection::new(id, peer, link.clone()), OutboundBuffer::new(link.clone()));
            // An outgoing connection already has its entity; an accepted one gets a new one.
            let existing = index.get(id).map(|e| e.entity);
            let entity = match existing.and_then(|e| world.get_entity_mut(e).ok()) {
                Some(mut entity) => {
                    entity.remove::<Connecting>().insert(components);
                    entity.id()
                }
                None if existing.is_some() => {
                    // Its entity was despawned while connecting: nobody wants this connection.
                    link.close(DisconnectReason::ClosedByApp("its entity was despawned".into()));
                    return;
                }
                None => world.spawn(components).id(),
            };
            index.insert(id, SessionEntry { entity, link: Some(link) });
            world.write_message(Connected { entity, peer });
            stats.sessions += 1;
            stats.sessions_total += 1;
        }
        IoEvent::Disconnected { id, reason } => {
            if let Some(SessionEntry { entity, .. }) = index.remove(id) {
                world.write_message(Disconnected { entity, reason: *reason });
                world.resource_mut::<PendingDespawn>().0.push(entity);
                stats.sessions = stats.sessions.saturating_sub(1);
            }
        }
        IoEvent::ConnectFailed { id, error } => {
            if let Some(SessionEntry { entity, .. }) = index.remove(id) {
                let addr = world.get::<Connecting>(entity).map(|c| c.addr);
                if let Some(addr) = addr {
                    world.write_message(ConnectFailed { entity, addr, error: error.into() });
                }
                world.resource_mut::<PendingDespawn>().0.push(entity);
            }
        }
    }
}

/// Despawns the entities of sessions that ended this frame, after every game system saw them.
fn despawn_ended(world: &mut World) {
    let ended = std::mem::take(&mut world.resource_mut::<PendingDespawn>().0);
    for entity in ended {
        // Game code may have despawned it already.
        let _ = world.try_despawn(entity);
    }
}

/// Shuts the network down gracefully when the application exits: stop accepting, flush,
/// close, join the I/O threads within the configured timeout.
/// [`NetStats`] is refreshed afterwards, so it counts the sessions the shutdown closed.
fn shutdown_on_exit(
    mut exits: MessageReader<AppExit>,
    runtime: Option<ResMut<IoRuntime>>,
    mut stats: ResMut<NetStats>,
) {
    if exits.read().next().is_some()
        && let Some(mut runtime) = runtime
    {
        tracing::info!("shutting down the network: flushing and closing every connection");
        runtime.shutdown();
        stats.absorb(runtime.counters());
    }
}
