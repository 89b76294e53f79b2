//! Rate limiter and retry budget on a virtual clock.

use std::net::IpAddr;
use std::time::Duration;

use tandem_policy::{RateLimiter, RetryBudget};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// How many checks in a row pass at `now`.
fn drain(l: &mut RateLimiter, client: IpAddr, now: Duration) -> usize {
    (0..1000)
        .take_while(|_| l.check(client, now).is_ok())
        .count()
}

#[test]
fn burst_then_refill() {
    let a = ip("10.0.0.1");
    let mut l = RateLimiter::new(2.0, 3, 100);
    assert_eq!(drain(&mut l, a, secs(100)), 3);
    assert_eq!(l.check(a, secs(100)), Err(secs(1)));
    // 2 per second: one token every 500 ms.
    assert_eq!(drain(&mut l, a, secs(100) + ms(499)), 0);
    assert_eq!(drain(&mut l, a, secs(100) + ms(500)), 1);
    assert_eq!(drain(&mut l, a, secs(101) + ms(500)), 2);
    // A long pause refills to the burst, no further.
    assert_eq!(drain(&mut l, a, secs(200)), 3);
    // Other clients have their own bucket; a mapped address is its IPv4.
    assert_eq!(drain(&mut l, ip("10.0.0.2"), secs(200)), 3);
    assert_eq!(drain(&mut l, ip("::ffff:10.0.0.1"), secs(200)), 0);
    assert_eq!(l.len(), 2);
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let a = ip("2001:db8::1");
    // One token every 4 s.
    let mut l = RateLimiter::new(0.25, 1, 10);
    assert_eq!(l.check(a, secs(0)), Ok(()));
    assert_eq!(l.check(a, secs(0)), Err(secs(4)));
    assert_eq!(l.check(a, ms(1500)), Err(secs(3)));
    assert_eq!(l.check(a, ms(3900)), Err(secs(1)));
    assert_eq!(l.check(a, ms(3999)), Err(secs(1)));
    assert_eq!(l.check(a, secs(4)), Ok(()));
    // Denied checks take nothing.
    assert_eq!(l.check(a, secs(7)), Err(secs(1)));
    assert_eq!(l.check(a, secs(8)), Ok(()));
}

#[test]
fn client_count_is_bounded() {
    let mut l = RateLimiter::new(1.0, 2, 50);
    for i in 0..=255u8 {
        l.check(IpAddr::from([192, 0, 2, i]), secs(u64::from(i) / 10))
            .unwrap();
        assert!(l.len() <= 50);
    }
    assert_eq!(l.len(), 50);
}

#[test]
fn eviction_prefers_full_buckets_then_lowest_ip() {
    let (a, b, c, d) = (
        ip("10.0.0.4"),
        ip("10.0.0.3"),
        ip("10.0.0.2"),
        ip("10.0.0.1"),
    );
    let mut l = RateLimiter::new(1.0, 5, 2);
    // a drains its bucket; b takes one token and is full again at t = 1.
    assert_eq!(drain(&mut l, a, secs(0)), 5);
    l.check(b, secs(0)).unwrap();
    // c needs room at t = 2: b (full) goes, not a, though both were last
    // seen at the same time and b has the lower address.
    l.check(c, secs(2)).unwrap();
    assert_eq!(drain(&mut l, a, secs(2)), 2, "a kept its drained bucket");
    assert_eq!(l.len(), 2);
    // Now c (full at 3) and a (full at 7): d evicts c.
    l.check(d, secs(4)).unwrap();
    assert_eq!(drain(&mut l, a, secs(4)), 2, "a refilled two, not evicted");
    // Two full buckets with equal TAT: the lower address goes.
    let mut l = RateLimiter::new(1.0, 5, 2);
    l.check(a, secs(0)).unwrap();
    l.check(b, secs(0)).unwrap();
    l.check(c, secs(5)).unwrap();
    assert_eq!(
        drain(&mut l, b, secs(5)),
        5,
        "b was evicted and starts full"
    );
    // The outcome is a function of the inputs alone.
    let run = || {
        let mut l = RateLimiter::new(3.0, 4, 7);
        (0..500u32)
            .map(|i| {
                l.check(
                    IpAddr::from([10, 0, 0, (i * 7 % 13) as u8]),
                    ms(u64::from(i) * 37),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn purge_full_forgets_only_full_buckets() {
    let mut l = RateLimiter::new(1.0, 3, 10);
    drain(&mut l, ip("10.0.0.1"), secs(0));
    l.check(ip("10.0.0.2"), secs(0)).unwrap();
    assert_eq!(l.purge_full(secs(1)), 1);
    assert_eq!(l.len(), 1);
    assert_eq!(l.purge_full(secs(3)), 1);
    assert!(l.is_empty());
}

#[test]
fn retry_budget_floor_applies_without_traffic() {
    let mut b = RetryBudget::new(0.2, 2, secs(10));
    let granted = (0..100).filter(|_| b.try_retry(secs(50))).count();
    assert_eq!(granted, 20);
}

#[test]
fn retry_budget_ratio_of_recent_requests() {
    let mut b = RetryBudget::new(0.2, 0, secs(10));
    assert!(!b.try_retry(secs(0)));
    for _ in 0..10 {
        b.record_request(secs(1));
    }
    assert!(b.try_retry(secs(2)));
    assert!(b.try_retry(secs(2)));
    assert!(!b.try_retry(secs(2)));
    for _ in 0..5 {
        b.record_request(secs(3));
    }
    assert!(b.try_retry(secs(3)));
    assert!(!b.try_retry(secs(3)));
}

#[test]
fn retry_budget_window_expires() {
    // Floor of 10 retries per 10 s, ratio 1.
    let mut b = RetryBudget::new(1.0, 1, secs(10));
    assert_eq!((0..50).filter(|_| b.try_retry(secs(100))).count(), 10);
    assert!(!b.try_retry(secs(109) + ms(999)));
    // The retries' bucket leaves the window a full ttl later.
    assert_eq!((0..50).filter(|_| b.try_retry(secs(110))).count(), 10);

    // Requests expire the same way.
    let mut b = RetryBudget::new(1.0, 0, secs(10));
    for _ in 0..5 {
        b.record_request(secs(20));
    }
    assert!(b.try_retry(secs(29)));
    assert!(!b.try_retry(secs(30)));
    // A clock stepping back neither resurrects nor wipes counts.
    assert!(!b.try_retry(secs(20)));
}
