//! The path a game developer takes to add a packet and a system (`examples/ping.rs`) keeps
//! working: the example's plugin, in the server app, answers hand-written `C_Ping` bytes.

mod support;

#[path = "../examples/ping.rs"]
mod ping;

use net_plugin::ServerPlugin;
use net_plugin::testing::AppThread;
use support::{Msg, WAIT, join, test_config};

#[test]
fn the_example_answers_pings() {
    let config = test_config();
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).unwrap();
    let addr = net.local_addr();
    let _server = AppThread::spawn(move || {
        let mut app = server::app(&config, net, None);
        app.add_plugins(ping::PingPlugin);
        app
    });
    let (mut client, _) = join(addr);
    // C_Ping { clientTime: 0x0102030405060708 }: size 12, id 9.
    client.send(&[12, 0, 9, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    // S_Pong, id 10, the same 8 bytes back.
    assert_eq!(client.recv(WAIT), Some(Msg::Other(10, vec![8, 7, 6, 5, 4, 3, 2, 1])));
}

#[test]
fn the_default_server_ignores_them() {
    let (_server, addr) = support::start(test_config());
    let (mut client, _) = join(addr);
    client.send(&[12, 0, 9, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    assert!(client.recv(support::QUIET).is_none());
}
