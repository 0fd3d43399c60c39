//! Chat: `C_Chat` → `S_Chat { playerId, text }` to everyone in the room, with a length limit.

mod support;

use server::{ChatConfig, ServerConfig};
use support::{Msg, QUIET, WAIT, join, start, test_config};

#[test]
fn chat_reaches_the_whole_room_with_non_ascii_text() {
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert!(matches!(a.recv(WAIT), Some(Msg::Enter { .. })));
    let text = "안녕하세요 👋 héllo";
    a.send_chat(text);
    let line = Msg::Chat { id: a.my_id(), text: text.into() };
    assert_eq!(a.recv(WAIT), Some(line.clone()));
    assert_eq!(b.recv(WAIT), Some(line));
    a.send_chat("");
    assert_eq!(b.recv(WAIT), Some(Msg::Chat { id: a.my_id(), text: String::new() }));
}

#[test]
fn a_line_above_the_limit_disconnects_its_sender() {
    let (_server, addr) = start(ServerConfig { chat: ChatConfig { max_chars: 10 }, ..test_config() });
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert!(matches!(a.recv(WAIT), Some(Msg::Enter { .. })));
    // Ten characters (one of them two UTF-16 units) are fine.
    a.send_chat("123456789😀");
    assert_eq!(b.recv(WAIT), Some(Msg::Chat { id: a.my_id(), text: "123456789😀".into() }));
    a.send_chat("12345678901");
    assert!(a.closed());
    assert_eq!(b.recv(WAIT), Some(Msg::Leave { id: a.my_id() }));
    assert!(b.recv(QUIET).is_none(), "the long line is not relayed");
}
