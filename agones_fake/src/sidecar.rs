//! The fake sidecar: its state, its two gRPC services, and its runtime.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::Stream;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::beta::sdk_server::{Sdk as BetaService, SdkServer as BetaServer};
use crate::proto::beta::{
    AddListValueRequest, Counter, GetCounterRequest, GetListRequest, List, RemoveListValueRequest,
    UpdateCounterRequest, UpdateListRequest,
};
use crate::proto::sdk::game_server::status::CounterStatus;
use crate::proto::sdk::game_server::{ObjectMeta, Status as GameServerStatus};
use crate::proto::sdk::sdk_server::{Sdk as SdkService, SdkServer};
use crate::proto::sdk::{Duration as SdkDuration, Empty, GameServer, KeyValue};

/// The Counter the fake GameServer defines, as a fleet of this server's would: any other name
/// is NOT_FOUND, as it is for the real sidecar.
pub const PLAYERS_COUNTER: &str = "players";

/// A call the sidecar received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `Ready()`.
    Ready,
    /// `Allocate()`.
    Allocate,
    /// `Shutdown()`.
    Shutdown,
    /// A `Health` stream was opened.
    HealthStream,
    /// One health ping: one message on a `Health` stream.
    Health,
    /// `GetGameServer()`: the SDK's handshake, among others.
    GetGameServer,
    /// `WatchGameServer()`.
    WatchGameServer,
    /// `SetLabel(key, value)`.
    SetLabel(String, String),
    /// `SetAnnotation(key, value)`.
    SetAnnotation(String, String),
    /// `Reserve(seconds)`.
    Reserve(i64),
    /// `GetCounter(name)`.
    GetCounter(String),
    /// `UpdateCounter`: a new count, a new capacity, or a difference.
    UpdateCounter {
        /// The Counter.
        name: String,
        /// The count to set, if any.
        count: Option<i64>,
        /// The capacity to set, if any.
        capacity: Option<i64>,
        /// The count to add (negative: remove).
        diff: i64,
    },
    /// Any call on Lists: the server makes none.
    List,
}

/// A kind of call, for [`FakeSidecar::fail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    /// `Ready()`.
    Ready,
    /// `Shutdown()`.
    Shutdown,
    /// `Health`: a failing stream is answered with an error at once.
    Health,
    /// `GetGameServer()`.
    GetGameServer,
    /// `WatchGameServer()`.
    WatchGameServer,
    /// `UpdateCounter`.
    UpdateCounter,
}

/// A call and when it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When it came.
    pub at: Instant,
    /// Which start of the sidecar took it: 0, then 1 after the first restart…
    pub incarnation: u32,
    /// The call.
    pub call: Call,
}

/// What every incarnation of the sidecar shares.
struct Shared {
    records: Mutex<Vec<Record>>,
    /// Calls that fail, and how many more times (`None`: until healed).
    failing: Mutex<HashMap<Rpc, Option<usize>>>,
    /// The GameServer as the sidecar knows it; watchers are sent every change.
    game_server: watch::Sender<GameServer>,
    incarnation: Mutex<u32>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn record(&self, call: Call) {
        let incarnation = *lock(&self.incarnation);
        lock(&self.records).push(Record { at: Instant::now(), incarnation, call });
    }

    /// Records `call`, then fails it if `rpc` is set to fail.
    // `Status` is what tonic's handlers return: boxing it here would only move the size.
    #[allow(clippy::result_large_err)]
    fn take(&self, rpc: Rpc, call: Call) -> Result<(), Status> {
        self.record(call);
        let mut failing = lock(&self.failing);
        match failing.get_mut(&rpc) {
            None => Ok(()),
            Some(None) => Err(Status::unavailable(format!("injected failure of {rpc:?}"))),
            Some(Some(left)) => {
                *left -= 1;
                if *left == 0 {
                    failing.remove(&rpc);
                }
                Err(Status::unavailable(format!("injected failure of {rpc:?}")))
            }
        }
    }

    fn set_state(&self, state: &str) {
        self.game_server.send_modify(|gs| {
            if let Some(status) = gs.status.as_mut() {
                status.state = state.to_string();
            }
        });
    }

    fn counter(&self, name: &str) -> Option<Counter> {
        let gs = self.game_server.borrow();
        let status = gs.status.as_ref()?.counters.get(name)?;
        Some(Counter { name: name.to_string(), count: status.count, capacity: status.capacity })
    }
}

/// The stable SDK service.
struct SdkImpl(Arc<Shared>);

type WatchStream = Pin<Box<dyn Stream<Item = Result<GameServer, Status>> + Send>>;

#[tonic::async_trait]
impl SdkService for SdkImpl {
    async fn ready(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.0.take(Rpc::Ready, Call::Ready)?;
        self.0.set_state("Ready");
        Ok(Response::new(Empty {}))
    }

    async fn allocate(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.0.record(Call::Allocate);
        self.0.set_state("Allocated");
        Ok(Response::new(Empty {}))
    }

    async fn shutdown(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.0.take(Rpc::Shutdown, Call::Shutdown)?;
        self.0.set_state("Shutdown");
        Ok(Response::new(Empty {}))
    }

    async fn health(&self, request: Request<Streaming<Empty>>) -> Result<Response<Empty>, Status> {
        self.0.take(Rpc::Health, Call::HealthStream)?;
        let mut pings = request.into_inner();
        while pings.message().await?.is_some() {
            self.0.record(Call::Health);
        }
        Ok(Response::new(Empty {}))
    }

    async fn get_game_server(&self, _: Request<Empty>) -> Result<Response<GameServer>, Status> {
        self.0.take(Rpc::GetGameServer, Call::GetGameServer)?;
        Ok(Response::new(self.0.game_server.borrow().clone()))
    }

    type WatchGameServerStream = WatchStream;

    async fn watch_game_server(&self, _: Request<Empty>) -> Result<Response<WatchStream>, Status> {
        self.0.take(Rpc::WatchGameServer, Call::WatchGameServer)?;
        let mut changes = self.0.game_server.subscribe();
        changes.mark_changed();
        let stream = futures_util::stream::unfold(changes, |mut changes| async move {
            changes.changed().await.ok()?;
            let gs = changes.borrow_and_update().clone();
            Some((Ok(gs), changes))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn set_label(&self, request: Request<KeyValue>) -> Result<Response<Empty>, Status> {
        let KeyValue { key, value } = request.into_inner();
        self.0.record(Call::SetLabel(key, value));
        Ok(Response::new(Empty {}))
    }

    async fn set_annotation(&self, request: Request<KeyValue>) -> Result<Response<Empty>, Status> {
        let KeyValue { key, value } = request.into_inner();
        self.0.record(Call::SetAnnotation(key, value));
        Ok(Response::new(Empty {}))
    }

    async fn reserve(&self, request: Request<SdkDuration>) -> Result<Response<Empty>, Status> {
        self.0.record(Call::Reserve(request.into_inner().seconds));
        Ok(Response::new(Empty {}))
    }
}

/// The beta SDK service: Counters (Lists are not used by the server, and answer UNIMPLEMENTED).
struct BetaImpl(Arc<Shared>);

impl BetaImpl {
    /// What every call on Lists gets.
    #[allow(clippy::result_large_err)]
    fn no_lists(&self) -> Result<Response<List>, Status> {
        self.0.record(Call::List);
        Err(Status::unimplemented("the fake sidecar has no Lists"))
    }
}

#[tonic::async_trait]
impl BetaService for BetaImpl {
    async fn get_counter(&self, request: Request<GetCounterRequest>) -> Result<Response<Counter>, Status> {
        let name = request.into_inner().name;
        self.0.record(Call::GetCounter(name.clone()));
        self.0.counter(&name).map(Response::new).ok_or_else(|| Status::not_found(format!("no counter {name}")))
    }

    async fn update_counter(&self, request: Request<UpdateCounterRequest>) -> Result<Response<Counter>, Status> {
        let Some(update) = request.into_inner().counter_update_request else {
            return Err(Status::invalid_argument("no CounterUpdateRequest"));
        };
        let call = Call::UpdateCounter {
            name: update.name.clone(),
            count: update.count,
            capacity: update.capacity,
            diff: update.count_diff,
        };
        self.0.take(Rpc::UpdateCounter, call)?;
        let Some(mut counter) = self.0.counter(&update.name) else {
            return Err(Status::not_found(format!("no counter {}", update.name)));
        };
        // As the real sidecar: the capacity first, then the count, which must stay in [0, capacity].
        if let Some(capacity) = update.capacity {
            if capacity < 0 {
                return Err(Status::out_of_range("a negative capacity"));
            }
            counter.capacity = capacity;
        }
        let count = update.count.unwrap_or(counter.count) + update.count_diff;
        if !(0..=counter.capacity).contains(&count) {
            return Err(Status::out_of_range(format!("count {count} outside [0, {}]", counter.capacity)));
        }
        counter.count = count;
        self.0.game_server.send_modify(|gs| {
            if let Some(status) = gs.status.as_mut() {
                status.counters.insert(counter.name.clone(), CounterStatus { count, capacity: counter.capacity });
            }
        });
        Ok(Response::new(counter))
    }

    async fn get_list(&self, _: Request<GetListRequest>) -> Result<Response<List>, Status> {
        self.no_lists()
    }

    async fn update_list(&self, _: Request<UpdateListRequest>) -> Result<Response<List>, Status> {
        self.no_lists()
    }

    async fn add_list_value(&self, _: Request<AddListValueRequest>) -> Result<Response<List>, Status> {
        self.no_lists()
    }

    async fn remove_list_value(&self, _: Request<RemoveListValueRequest>) -> Result<Response<List>, Status> {
        self.no_lists()
    }
}

/// A fake SDK sidecar on `127.0.0.1`, running on threads of its own until dropped.
pub struct FakeSidecar {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// `None` while stopped.
    runtime: Option<Runtime>,
}

/// How long a restart keeps trying to bind the port again.
const REBIND: Duration = Duration::from_secs(5);

impl FakeSidecar {
    /// Starts a sidecar on a free loopback port, its GameServer `Scheduled` with a `players`
    /// Counter of count 0 and capacity 0 (the fleet's manifest sets the real one).
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("a local address");
        let game_server = GameServer {
            object_meta: Some(ObjectMeta { name: "fake-gameserver".into(), ..ObjectMeta::default() }),
            spec: None,
            status: Some(GameServerStatus {
                state: "Scheduled".into(),
                counters: HashMap::from([(PLAYERS_COUNTER.to_string(), CounterStatus { count: 0, capacity: 0 })]),
                ..GameServerStatus::default()
            }),
        };
        let shared = Arc::new(Shared {
            records: Mutex::default(),
            failing: Mutex::default(),
            game_server: watch::Sender::new(game_server),
            incarnation: Mutex::new(0),
        });
        let mut sidecar = Self { addr, shared, runtime: None };
        sidecar.serve(listener);
        sidecar
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fake-sidecar")
            .enable_all()
            .build()
            .expect("start the fake sidecar's runtime");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let (sdk, beta) = (SdkImpl(self.shared.clone()), BetaImpl(self.shared.clone()));
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("register the listener");
            let served = tonic::transport::Server::builder()
                .add_service(SdkServer::new(sdk))
                .add_service(BetaServer::new(beta))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
            if let Err(e) = served {
                eprintln!("fake sidecar: {e}");
            }
        });
        self.runtime = Some(runtime);
    }

    /// The port it listens on: the SDK's `AGONES_SDK_GRPC_PORT`.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.records).iter().map(|r| r.call.clone()).collect()
    }

    /// Every call so far, with when it came.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.shared.records).clone()
    }

    /// Checks the calls every few milliseconds until `done` holds or `timeout` passes; returns
    /// whether it held.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Call]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.calls()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Makes calls of `rpc` fail with UNAVAILABLE: the next `times` ones, or (`None`) all until
    /// [`heal`](Self::heal). A failing call is still recorded.
    pub fn fail(&self, rpc: Rpc, times: Option<usize>) {
        if times != Some(0) {
            lock(&self.shared.failing).insert(rpc, times);
        }
    }

    /// Calls of `rpc` succeed again.
    pub fn heal(&self, rpc: Rpc) {
        lock(&self.shared.failing).remove(&rpc);
    }

    /// Sets the GameServer's state (`"Allocated"`, as an allocation would), telling watchers.
    pub fn set_state(&self, state: &str) {
        self.shared.set_state(state);
    }

    /// The GameServer's state.
    pub fn state(&self) -> String {
        self.shared.game_server.borrow().status.as_ref().map(|s| s.state.clone()).unwrap_or_default()
    }

    /// The `players` Counter: (count, capacity).
    pub fn players(&self) -> (i64, i64) {
        self.shared.counter(PLAYERS_COUNTER).map_or((0, 0), |c| (c.count, c.capacity))
    }

    /// Stops serving: the port is closed and every connection dropped, as when a sidecar dies.
    pub fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }

    /// Stops (if running) and serves again on the same port, with the same records and
    /// GameServer: a sidecar restarted by its pod.
    pub fn restart(&mut self) {
        self.stop();
        *lock(&self.shared.incarnation) += 1;
        let deadline = Instant::now() + REBIND;
        let listener = loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("cannot bind {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

impl Drop for FakeSidecar {
    fn drop(&mut self) {
        self.stop();
    }
}
