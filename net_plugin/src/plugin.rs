//! The ECS half shared by the server and client plugins: where their systems run, the messages,
//! and the shutdown.

use std::marker::PhantomData;
use std::sync::Arc;

use bevy_app::{App, AppExit, Last, Plugin, PostUpdate, PreUpdate, Update};
use bevy_ecs::message::{MessageCursor, Messages};
use bevy_ecs::prelude::*;
use shared::{Packet, PacketSet, PacketTypeVisitor};

use crate::connection::{PendingDespawn, SessionIndex};
use crate::core::BacklogLimits;
use crate::handle::Session;
use crate::inbound::{self, InboundQueue, Inbox};
use crate::outbound::{self, Backlog, Counters, Sends, SentThisFrame, WriterHandle};
use crate::runtime::{IoRuntime, NetFaults};
use crate::session::SessionContext;
use crate::stats::IoCounters;
use crate::{BindError, ConnectFailed, Connected, Connection, Disconnected, NetConfig, NetStats, Received};

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
    /// frame. On [`AppExit`] it shuts the network down gracefully: stops accepting, lets every
    /// connection write what it was sent and close, then runs `PreUpdate`, `Update` and
    /// `PostUpdate` once more so game systems see each connection's [`Disconnected`] (reason
    /// [`Shutdown`](crate::DisconnectReason::Shutdown)), and stops the I/O threads.
    Cleanup,
}

/// The I/O side of either plugin, started but not yet installed in an app.
pub(crate) struct IoStart<In> {
    pub runtime: IoRuntime,
    pub inbox: Inbox<In>,
    pub cx: Arc<SessionContext<In>>,
}

impl<In: PacketSet> IoStart<In> {
    /// Checks the configuration and starts the I/O threads (named `thread_name`) and the inbound
    /// channel.
    pub fn new(thread_name: &'static str, config: NetConfig) -> Result<Self, BindError> {
        config.validate().map_err(BindError::Config)?;
        let counters = Arc::new(IoCounters::default());
        let runtime = IoRuntime::start(thread_name, &config, counters.clone()).map_err(BindError::Runtime)?;
        let (inbound, inbox): (InboundQueue<In>, Inbox<In>) = inbound::channel(config.inbound_queue, counters.clone());
        let cx = Arc::new(SessionContext {
            config,
            inbound,
            writer: runtime.writer().clone(),
            counters,
            registry: runtime.registry().clone(),
        });
        Ok(Self { runtime, inbox, cx })
    }

    /// Hands the runtime and the channel to the app, with the systems and messages both sides
    /// share. `Out` is the packet set this side sends.
    pub fn install<Out: PacketSet>(self, app: &mut App) {
        let backlog = BacklogLimits::of(&self.cx.config);
        app.insert_resource(WriterHandle(self.runtime.writer().clone()))
            .insert_resource(Counters(self.runtime.counters().clone()))
            .insert_resource(NetFaults(self.runtime.faults().clone()))
            .insert_resource(self.runtime)
            .insert_resource(self.inbox)
            .add_plugins(NetCorePlugin::<In, Out> { backlog, _sets: PhantomData });
    }
}

/// Adds everything both sides share. Added by [`ServerPlugin`](crate::ServerPlugin) and
/// [`ClientPlugin`](crate::ClientPlugin); not used directly.
struct NetCorePlugin<In: PacketSet, Out: PacketSet> {
    backlog: BacklogLimits,
    _sets: PhantomData<fn() -> (In, Out)>,
}

struct RegisterMessages<'a>(&'a mut App);

impl PacketTypeVisitor for RegisterMessages<'_> {
    fn visit<P: Packet>(&mut self) {
        self.0.add_message::<Received<P, P::Set>>();
    }
}

impl<In: PacketSet, Out: PacketSet> Plugin for NetCorePlugin<In, Out> {
    fn build(&self, app: &mut App) {
        if app.world().contains_resource::<SessionIndex>() {
            // A programming error, found at startup: one application is a server or a client.
            panic!("an application runs either the ServerPlugin or the ClientPlugin, not both");
        }
        In::visit_types(&mut RegisterMessages(app));
        app.add_message::<Connected>()
            .add_message::<Disconnected>()
            .add_message::<ConnectFailed>()
            .add_message::<AppExit>()
            .init_resource::<Sends<Out>>()
            .init_resource::<SentThisFrame>()
            .insert_resource(Backlog(self.backlog))
            .init_resource::<SessionIndex>()
            .init_resource::<PendingDespawn>()
            .init_resource::<NetStats>()
            .configure_sets(Last, NetSystems::Cleanup.after(NetSystems::Send))
            .add_systems(PreUpdate, (inbound::receive::<In>, exit_if_failed).chain().in_set(NetSystems::Receive))
            .add_systems(Last, outbound::flush.in_set(NetSystems::Send))
            .add_systems(Last, (despawn_ended, shutdown_on_exit::<In>).chain().in_set(NetSystems::Cleanup));
    }
}

/// Despawns the entities of sessions that ended this frame, after every game system saw them.
///
/// An entity is most often its session's last holder, and the last holder closes the socket:
/// for a peer cut for not reading, a reset, and the kernel freeing what its buffers held. A
/// thousand cut at once made that a frame's work (measured: `close` on the game thread); so the
/// sessions are held past the despawn and let go on the I/O threads instead.
fn despawn_ended(world: &mut World) {
    let ended = std::mem::take(&mut world.resource_mut::<PendingDespawn>().0);
    if ended.is_empty() {
        return;
    }
    let sessions: Vec<Arc<Session>> =
        ended.iter().filter_map(|e| world.get::<Connection>(*e).map(|c| c.session().clone())).collect();
    for entity in ended {
        // Game code may have despawned it already.
        let _ = world.try_despawn(entity);
    }
    // Without the runtime (at shutdown) they go here, as before.
    if let Some(io) = world.get_resource::<IoRuntime>().and_then(IoRuntime::handle) {
        io.spawn(async move { drop(sessions) });
    }
}

/// Exits the app with an error when a supervised network task gave up.
fn exit_if_failed(runtime: Option<Res<IoRuntime>>, mut exits: MessageWriter<AppExit>, mut told: Local<bool>) {
    if let Some(reason) = runtime.as_ref().and_then(|r| r.fatal())
        && !*told
    {
        *told = true;
        tracing::error!(%reason, "the network failed; exiting");
        exits.write(AppExit::error());
    }
}

/// Shuts the network down gracefully when the application exits (see [`NetSystems::Cleanup`]).
/// [`NetStats`] is refreshed afterwards, so it counts the sessions the shutdown closed.
fn shutdown_on_exit<In: PacketSet>(world: &mut World, mut exits: Local<MessageCursor<AppExit>>) {
    let exiting = world.get_resource::<Messages<AppExit>>().is_some_and(|m| exits.read(m).next().is_some());
    if !exiting {
        return;
    }
    let Some(mut runtime) = world.remove_resource::<IoRuntime>() else { return };
    tracing::info!("shutting down the network: flushing and closing every connection");
    // Bytes held for a later write go now, before the sessions close.
    let _ = world.run_system_cached(outbound::flush_everything);
    runtime.close_all();
    // A last pass, so game code sees every connection's end.
    let _ = world.try_run_schedule(PreUpdate);
    let _ = world.try_run_schedule(Update);
    let _ = world.try_run_schedule(PostUpdate);
    despawn_ended(world);
    world.resource::<Inbox<In>>().close();
    runtime.shutdown();
    let counters = runtime.counters().clone();
    counters.summarise_faults(std::time::Instant::now(), true);
    world.resource_mut::<NetStats>().absorb(&counters);
}
