//! Tracker weights (keepalived track_script / track_interface): effective priority only.

use std::net::Ipv4Addr;
use std::time::Duration;

use tandem_vrrp::machine::{Action, Advert, Instance, InstanceConfig, Reason, State};

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn advert(src: Ipv4Addr, priority: u8) -> Advert {
    Advert {
        src: src.into(),
        priority,
        max_advert_int_cs: 100,
    }
}

fn has_transition(out: &[Action]) -> bool {
    out.iter().any(|a| matches!(a, Action::Transition { .. }))
}

#[test]
fn effective_priority_is_clamped_and_the_owner_is_immune() {
    let cases: [(u8, i32, u8); 12] = [
        (100, 0, 100),
        (100, -20, 80),
        (100, 30, 130),
        (100, -99, 1),
        (100, -200, 1),
        (100, 500, 254),
        (254, 1, 254),
        (200, 54, 254),
        (1, -1, 1),
        (100, i32::MIN, 1),
        (100, i32::MAX, 254),
        (255, -100, 255),
    ];
    for (base, delta, expect) in cases {
        let mut inst = Instance::new(InstanceConfig::new("t", 1, base, LOCAL));
        assert!(
            inst.set_priority_adjustment(delta, ms(1)).is_empty(),
            "not running: no actions"
        );
        assert_eq!(
            inst.effective_priority(),
            expect,
            "base {base} delta {delta}"
        );
        assert_eq!(inst.base_priority(), base);
        assert_eq!(inst.priority_adjustment(), delta);
    }
    let mut owner = Instance::new(InstanceConfig::new("t", 1, 255, LOCAL));
    owner.startup(ms(0));
    assert!(owner.set_priority_adjustment(i32::MIN, ms(1)).is_empty());
    assert!(owner.set_priority_adjustment(i32::MAX, ms(2)).is_empty());
}

#[test]
fn master_advertises_a_changed_priority_at_once_without_transitions() {
    let mut inst = Instance::new(InstanceConfig::new("t", 1, 100, LOCAL));
    inst.startup(ms(0));
    let t0 = inst.poll_timeout().unwrap();
    inst.on_timer(t0);
    let now = t0 + ms(300);
    assert_eq!(
        inst.set_priority_adjustment(-30, now),
        vec![Action::SendAdvert { priority: 70 }]
    );
    assert_eq!(inst.poll_timeout(), Some(now + Duration::from_secs(1)));
    // Same adjustment again, or one that clamps to the same value: nothing.
    assert!(inst.set_priority_adjustment(-30, now + ms(1)).is_empty());
    assert_eq!(
        inst.on_timer(now + Duration::from_secs(1)),
        vec![Action::SendAdvert { priority: 70 }]
    );
}

#[test]
fn flapping_tracker_on_a_master_never_transitions() {
    let mut inst = Instance::new(InstanceConfig::new("t", 1, 100, LOCAL));
    inst.startup(ms(0));
    let mut now = inst.poll_timeout().unwrap();
    inst.on_timer(now);
    for k in 0..200u64 {
        now += ms(37);
        let delta = if k % 2 == 0 { -90 } else { 50 };
        let out = inst.set_priority_adjustment(delta, now);
        assert!(!has_transition(&out));
        while let Some(due) = inst.poll_timeout().filter(|d| *d <= now) {
            assert!(!has_transition(&inst.on_timer(due)));
        }
        // A silent lower-priority peer advertising now and then changes nothing either.
        if k % 25 == 0 {
            assert!(!has_transition(&inst.on_advert(advert(PEER, 5), now)));
        }
        assert_eq!(inst.state(), State::Master);
    }
}

/// Master A (100) with Backup B (90): A's tracker drops it to 80; B preempts after its MDI
/// by ignoring A's adverts; A yields on B's first advert.
#[test]
fn degraded_master_is_replaced_by_a_preempting_backup() {
    let a_ip = LOCAL;
    let mut a = Instance::new(InstanceConfig::new("a", 1, 100, a_ip));
    let mut b = Instance::new(InstanceConfig::new("b", 1, 90, PEER));
    a.startup(ms(0));
    b.startup(ms(0));
    let mut now = a.poll_timeout().unwrap();
    a.on_timer(now);
    b.on_advert(advert(a_ip, 100), now);
    now += ms(500);
    assert_eq!(
        a.set_priority_adjustment(-20, now),
        vec![Action::SendAdvert { priority: 80 }]
    );
    b.on_advert(advert(a_ip, 80), now);
    let b_due = b.poll_timeout().unwrap();
    // A keeps advertising 80 every second; B ignores it and takes over at b_due.
    loop {
        let a_due = a.poll_timeout().unwrap();
        if a_due >= b_due {
            break;
        }
        assert_eq!(a.on_timer(a_due), vec![Action::SendAdvert { priority: 80 }]);
        assert!(b.on_advert(advert(a_ip, 80), a_due).is_empty());
        assert_eq!(b.poll_timeout(), Some(b_due));
    }
    let out = b.on_timer(b_due);
    let reason = Reason::PreemptingLowerPriority {
        src: a_ip.into(),
        priority: 80,
    };
    assert_eq!(
        out.last(),
        Some(&Action::Transition {
            from: State::Backup,
            to: State::Master,
            reason
        })
    );
    let out = a.on_advert(advert(PEER, 90), b_due);
    let reason = Reason::Preempted {
        by: PEER.into(),
        priority: 90,
    };
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 80 },
            Action::ReleaseAddresses,
            Action::Transition {
                from: State::Master,
                to: State::Backup,
                reason
            }
        ]
    );
}

#[test]
fn raised_backup_preempts_by_letting_the_timer_run_out() {
    let mut inst = Instance::new(InstanceConfig::new("t", 1, 100, LOCAL));
    inst.startup(ms(0));
    let mut now = ms(500);
    inst.on_advert(advert(PEER, 150), now);
    let last_accepted = now;
    assert!(inst.set_priority_adjustment(100, now + ms(10)).is_empty());
    assert_eq!(inst.effective_priority(), 200);
    // 150 < 200 from now on: the adverts no longer reset the timer.
    loop {
        now += Duration::from_secs(1);
        if inst.poll_timeout().unwrap() <= now {
            break;
        }
        assert!(inst.on_advert(advert(PEER, 150), now).is_empty());
    }
    let due = inst.poll_timeout().unwrap();
    // The timer still runs from the last accepted advert, with the MDI computed then (at 100).
    assert_eq!(due, last_accepted + Duration::from_micros(3_609_375));
    let out = inst.on_timer(due);
    assert!(out.contains(&Action::TakeAddresses));
}

#[test]
fn lowered_backup_stops_preempting() {
    let mut inst = Instance::new(InstanceConfig::new("t", 1, 200, LOCAL));
    inst.startup(ms(0));
    inst.on_advert(advert(PEER, 150), ms(500));
    let ignored_until = inst.poll_timeout().unwrap();
    inst.set_priority_adjustment(-100, ms(600));
    // Now 100 < 150: the next advert is accepted again and resets the timer.
    inst.on_advert(advert(PEER, 150), ms(1500));
    assert_eq!(
        inst.poll_timeout(),
        Some(ms(1500) + inst.master_down_interval())
    );
    assert!(inst.poll_timeout().unwrap() > ignored_until);
    assert_eq!(inst.state(), State::Backup);
}
