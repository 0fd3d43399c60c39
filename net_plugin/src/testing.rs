//! Helpers for testing apps built on this plugin with real sockets: an app on a thread of its
//! own that tests can reach into, a recorder for messages, and a raw TCP client that speaks
//! bytes.
//!
//! ```no_run
//! use std::time::Duration;
//! use bevy_app::App;
//! use net_plugin::testing::{AppThread, RawClient, record, Recorded};
//! use net_plugin::{NetConfig, Received, ServerPlugin};
//! use shared::C_Move;
//!
//! let net = ServerPlugin::bind("127.0.0.1:0", NetConfig::default()).unwrap();
//! let addr = net.local_addr();
//! let server = AppThread::spawn(move || {
//!     let mut app = App::new();
//!     app.add_plugins(net);
//!     record::<Received<C_Move>>(&mut app);
//!     app
//! });
//! let mut client = RawClient::connect(addr);
//! client.send(&C_Move { pos_x: 1.0, pos_y: 2.0, pos_z: 3.0 });
//! assert!(server.wait_until(Duration::from_secs(5), |app| {
//!     app.world().resource::<Recorded<Received<C_Move>>>().0.len() == 1
//! }));
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bevy_app::{App, AppExit, PostUpdate};
use bevy_ecs::message::{Message, MessageReader};
use bevy_ecs::prelude::*;
use shared::{FrameDecoder, Packet, PacketSet};

/// How long a test app sleeps between frames: fast enough for tests, without spinning a core.
pub const TEST_FRAME: Duration = Duration::from_millis(2);

type Job = Box<dyn FnOnce(&mut App) + Send>;

/// An [`App`] updated in a loop on its own thread, as a server or a bot process would run it.
/// Tests reach into it between frames with [`AppThread::run`]; dropping it exits the app
/// (with [`AppExit`], so the network shuts down gracefully) and joins the thread.
pub struct AppThread {
    jobs: Option<mpsc::Sender<Job>>,
    /// Returns how the app exited.
    thread: Option<JoinHandle<AppExit>>,
}

impl AppThread {
    /// Builds the app on a new thread (apps are not `Send`) and updates it every [`TEST_FRAME`]
    /// until it exits.
    pub fn spawn(build: impl FnOnce() -> App + Send + 'static) -> Self {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("test-app".into())
            .spawn(move || {
                let mut app = build();
                app.finish();
                app.cleanup();
                loop {
                    while let Ok(job) = inbox.try_recv() {
                        job(&mut app);
                    }
                    app.update();
                    if let Some(exit) = app.should_exit() {
                        return exit;
                    }
                    std::thread::sleep(TEST_FRAME);
                }
            })
            .expect("spawn the test app thread");
        Self { jobs: Some(jobs), thread: Some(thread) }
    }

    /// Runs `f` on the app's thread between two frames and returns its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce(&mut App) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |app| {
            let _ = tx.send(f(app));
        });
        self.jobs.as_ref().expect("app running").send(job).expect("the test app thread is running");
        rx.recv().expect("the test app thread ran the job")
    }

    /// Checks `done` between frames until it holds or `timeout` passes; returns whether it held.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&mut App) -> bool + Send + Sync + 'static) -> bool {
        let done = std::sync::Arc::new(done);
        let deadline = Instant::now() + timeout;
        loop {
            let check = done.clone();
            if self.run(move |app| check(app)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits up to `timeout` for the app to exit by itself; returns how it exited, or `None` if
    /// it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<AppExit> {
        let deadline = Instant::now() + timeout;
        while !self.thread.as_ref()?.is_finished() {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.jobs = None;
        self.thread.take()?.join().ok()
    }

    /// Exits the app (writing [`AppExit`]) and waits for its thread.
    pub fn exit(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(jobs) = self.jobs.take() {
            let _ = jobs.send(Box::new(|app: &mut App| {
                app.world_mut().write_message(AppExit::Success);
            }));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AppThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes an app ready to be stepped by hand with [`App::update`] (what a runner does first):
/// its plugins' `finish` and `cleanup`.
pub fn ready(mut app: App) -> App {
    app.finish();
    app.cleanup();
    app
}

/// Steps `apps` in turn, one frame each, until `done` holds (then `true`) or `timeout` passes
/// (then `false`): for tests that run a server and its clients on the test's own thread, frame
/// by frame, as `bevy_replicon`'s do. Between rounds it yields a millisecond to the I/O threads.
pub fn step_until(apps: &mut [&mut App], timeout: Duration, mut done: impl FnMut(&mut [&mut App]) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        for app in apps.iter_mut() {
            app.update();
        }
        if done(apps) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Opens `n` connections from `client` (an app with the [`ClientPlugin`](crate::ClientPlugin))
/// to `server` (one with the [`ServerPlugin`](crate::ServerPlugin)), stepping both until each
/// side has them all; returns the client side's connection entities.
///
/// ```no_run
/// use std::time::Duration;
/// use bevy_app::App;
/// use net_plugin::testing::{connect, ready};
/// use net_plugin::{ClientPlugin, NetConfig, ServerPlugin};
///
/// let mut server = App::new();
/// server.add_plugins(ServerPlugin::bind("127.0.0.1:0", NetConfig::default()).unwrap());
/// let mut server = ready(server);
/// let mut client = App::new();
/// client.add_plugins(ClientPlugin::new(NetConfig::client_default()).unwrap());
/// let mut client = ready(client);
/// let connections = connect(&mut server, &mut client, 3, Duration::from_secs(10));
/// assert_eq!(connections.len(), 3);
/// ```
pub fn connect(server: &mut App, client: &mut App, n: usize, timeout: Duration) -> Vec<Entity> {
    use bevy_ecs::system::RunSystemOnce;
    let addr = server.world().resource::<crate::ServerAddr>().0;
    let entities = client
        .world_mut()
        .run_system_once(move |mut connector: crate::Connector| {
            (0..n).map(|_| connector.connect(addr)).collect::<Vec<_>>()
        })
        .expect("the client app has the ClientPlugin");
    let wanted = entities.clone();
    let open = |app: &mut App| {
        let mut connections = app.world_mut().query::<&crate::Connection>();
        connections.iter(app.world()).count()
    };
    let connected = step_until(&mut [server, client], timeout, |apps| {
        let [server, client] = apps else { return false };
        open(server) >= n && wanted.iter().all(|e| client.world().get::<crate::Connection>(*e).is_some())
    });
    assert!(connected, "{n} connections opened within {timeout:?}");
    entities
}

/// Runs `f` with an [`Outbox`](crate::Outbox) on `world`, as a system would: to send from a
/// test between frames.
pub fn with_outbox<R>(world: &mut World, f: impl FnOnce(&mut crate::Outbox<'_, '_>) -> R) -> R {
    let mut state = bevy_ecs::system::SystemState::<crate::Outbox<'_, '_>>::new(world);
    let result = f(&mut state.get_mut(world).expect("the network plugin is installed"));
    state.apply(world);
    result
}

/// The network's statistics as the I/O threads count them right now, without waiting for the
/// next frame to refresh [`NetStats`](crate::NetStats): for tests that pause the app and watch
/// what the I/O side does meanwhile.
pub fn io_stats(world: &World) -> crate::NetStats {
    let mut stats = world.resource::<crate::NetStats>().clone();
    stats.absorb(&world.resource::<crate::outbound::Counters>().0);
    stats
}

/// Every message of type `M` seen so far, when [`record`] was called for it.
#[derive(Resource, Debug)]
pub struct Recorded<M>(pub Vec<M>);

/// Records every message of type `M` into [`Recorded<M>`], in `PostUpdate`.
pub fn record<M: Message + Clone>(app: &mut App) {
    app.insert_resource(Recorded::<M>(Vec::new())).add_systems(
        PostUpdate,
        |mut messages: MessageReader<M>, mut recorded: ResMut<Recorded<M>>| {
            recorded.0.extend(messages.read().cloned());
        },
    );
}

/// What one read of a [`RawClient`] brought.
#[derive(Debug, PartialEq, Eq)]
enum ReadOutcome {
    Data,
    Closed,
    TimedOut,
}

/// A blocking TCP client that sends and reads raw bytes, to test the server as any peer would
/// see it. Panics (it is for tests) when the socket fails unexpectedly.
pub struct RawClient {
    stream: TcpStream,
    frames: FrameDecoder,
}

impl RawClient {
    /// Connects to `addr`, with Nagle off so each send leaves at once.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the test server");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        Self { stream, frames: FrameDecoder::new(shared::MAX_PACKET_LEN) }
    }

    /// The underlying socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends a packet.
    pub fn send<P: Packet>(&mut self, packet: &P) {
        self.send_bytes(&shared::encode_to_vec(packet).expect("encodable"));
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the test server");
    }

    /// Reads once, waiting until `deadline` at the most.
    fn read_until(&mut self, deadline: Instant) -> ReadOutcome {
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            return ReadOutcome::TimedOut;
        };
        self.stream.set_read_timeout(Some(left)).expect("set a read timeout");
        let mut buf = [0u8; 8192];
        match self.stream.read(&mut buf) {
            Ok(0) => ReadOutcome::Closed,
            Ok(n) => {
                self.frames.extend_from_slice(&buf[..n]);
                ReadOutcome::Data
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => ReadOutcome::TimedOut,
            Err(e) if e.kind() == ErrorKind::Interrupted => ReadOutcome::Data,
            Err(_) => ReadOutcome::Closed,
        }
    }

    /// The next whole packet (header included), or `None` if none arrives within `timeout` or
    /// the connection closes.
    pub fn recv_frame(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = self.frames.next_frame().expect("the server sends valid frames") {
                return Some(frame.to_vec());
            }
            if self.read_until(deadline) != ReadOutcome::Data {
                return None;
            }
        }
    }

    /// The next packet, decoded as a member of `S`.
    pub fn recv<S: PacketSet>(&mut self, timeout: Duration) -> Option<S> {
        self.recv_frame(timeout).map(|frame| shared::decode::<S>(&frame).expect("the server sends valid packets"))
    }

    /// Waits for the server to close the connection, discarding what arrives; returns whether
    /// it closed within `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_until(deadline) {
                ReadOutcome::Data => {}
                ReadOutcome::Closed => return true,
                ReadOutcome::TimedOut => return false,
            }
        }
    }
}
