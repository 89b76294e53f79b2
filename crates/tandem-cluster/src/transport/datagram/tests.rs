use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

fn key(seed: u8) -> SessionKey {
    let mut material = [seed; EXPORTED_LEN];
    material[0] = 0xab;
    SessionKey::from_exported(&material)
}

#[test]
fn a_sealed_request_opens_with_the_same_key_only() {
    let (a, b) = (key(1), key(2));
    let datagram = a.seal(Kind::Request, 7, b"append entries");
    let (header, plain) = a.open(&datagram).expect("opens");
    assert_eq!(header.kind, Kind::Request);
    assert_eq!(header.counter, 7);
    assert_eq!(header.session, a.id);
    assert_eq!(plain, b"append entries");
    // Same session id (first byte and seed differ only in the key part): forged.
    let mut material = [2u8; EXPORTED_LEN];
    material[..8].copy_from_slice(&a.id.to_be_bytes());
    let impostor = SessionKey::from_exported(&material);
    assert_eq!(impostor.open(&datagram), Err(DatagramError::Forged));
    assert_eq!(b.open(&datagram), Err(DatagramError::WrongSession));
}

#[test]
fn any_changed_byte_is_refused() {
    let a = key(3);
    let datagram = a.seal(Kind::Reply, 9, b"granted");
    for i in 0..datagram.len() {
        let mut bad = datagram.clone();
        bad[i] ^= 0x01;
        assert!(a.open(&bad).is_err(), "byte {i} changed and still opened");
    }
    // A request cannot be passed off as a reply (the kind is in the nonce and the AAD).
    let request = a.seal(Kind::Request, 9, b"x");
    let mut as_reply = request.clone();
    as_reply[1] = Kind::Reply as u8;
    assert_eq!(a.open(&as_reply), Err(DatagramError::Forged));
}

#[test]
fn headers_and_notices_parse() {
    let notice = Header::notice(Kind::UnknownSession, 42, 5);
    let header = Header::parse(&notice).unwrap();
    assert_eq!(
        header,
        Header {
            kind: Kind::UnknownSession,
            session: 42,
            counter: 5
        }
    );
    assert_eq!(key(1).open(&notice), Err(DatagramError::WrongSession));
    assert_eq!(Header::parse(&notice[..10]), Err(DatagramError::Short(10)));
    let mut other = notice;
    other[0] = 0;
    assert_eq!(Header::parse(&other), Err(DatagramError::NotOurs));
    other = notice;
    other[1] = 9;
    assert_eq!(Header::parse(&other), Err(DatagramError::NotOurs));
}

#[test]
fn each_counter_runs_once_and_its_copies_get_the_reply() {
    let mut recent = Recent::default();
    assert_eq!(recent.check(0), Seen::Stale);
    assert_eq!(recent.check(1), Seen::New);
    assert_eq!(recent.check(1), Seen::Running);
    let reply: Arc<[u8]> = Arc::from(&b"sealed reply"[..]);
    recent.answered(1, Arc::clone(&reply), Instant::now());
    assert_eq!(recent.check(1), Seen::Answered(reply));
    // Out of order within the window is fine.
    assert_eq!(recent.check(3), Seen::New);
    assert_eq!(recent.check(2), Seen::New);
}

#[test]
fn counters_older_than_the_window_are_stale() {
    let mut recent = Recent::default();
    for counter in 1..=(WINDOW as u64 + 10) {
        assert_eq!(recent.check(counter), Seen::New);
    }
    for counter in 1..=10 {
        assert_eq!(recent.check(counter), Seen::Stale, "counter {counter}");
    }
    assert_eq!(recent.check(11), Seen::Running);
    assert_eq!(recent.check(WINDOW as u64 + 11), Seen::New);
    assert_eq!(recent.check(11), Seen::Stale);
}

#[test]
fn a_client_whose_acks_stop_is_deaf_after_the_bound() {
    let start = Instant::now();
    let within = Duration::from_millis(300);
    let at = |ms: u64| start + Duration::from_millis(ms);
    let mut recent = Recent::default();
    let reply: Arc<[u8]> = Arc::from(&b"r"[..]);
    // Answers at 0, 100, 200 ms; the client acks 1 and 2 (3's answer was lost, 4's came).
    for (counter, ms) in [(1, 0), (2, 100), (3, 200)] {
        assert_eq!(recent.check(counter), Seen::New);
        recent.answered(counter, Arc::clone(&reply), at(ms));
    }
    recent.ack(2);
    assert!(!recent.deaf(at(400), within), "3 answered 200 ms before");
    assert!(
        recent.deaf(at(501), within),
        "3 answered 301 ms before, never acked"
    );
    // A later ack covers it (acks are the highest counter answered, not each one).
    assert_eq!(recent.check(4), Seen::New);
    recent.answered(4, Arc::clone(&reply), at(450));
    recent.ack(4);
    assert!(!recent.deaf(at(900), within));
    // Acks never go back.
    recent.ack(1);
    assert!(!recent.deaf(at(900), within));
    // Running requests (no answer yet) are not evidence of deafness.
    assert_eq!(recent.check(5), Seen::New);
    assert!(!recent.deaf(at(5000), within));
}
