//! Backup-side behaviour of the VRRP state machine (RFC 5798 6.4.1 / 6.4.2), on a virtual clock.

use std::net::Ipv4Addr;
use std::time::Duration;

use tandem_vrrp::machine::{Action, Advert, Instance, InstanceConfig, Reason, State};

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);
const LOW_PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cfg(priority: u8) -> InstanceConfig {
    InstanceConfig::new("vi_test", 51, priority, LOCAL)
}

fn advert(src: Ipv4Addr, priority: u8) -> Advert {
    Advert {
        src: src.into(),
        priority,
        max_advert_int_cs: 100,
    }
}

fn transition(from: State, to: State, reason: Reason) -> Action {
    Action::Transition { from, to, reason }
}

/// A Backup started at 0; asserts the startup actions.
fn backup(config: InstanceConfig) -> Instance {
    let mut inst = Instance::new(config);
    assert_eq!(inst.state(), State::Initialize);
    assert_eq!(inst.poll_timeout(), None);
    let out = inst.startup(Duration::ZERO);
    assert_eq!(
        out,
        vec![transition(
            State::Initialize,
            State::Backup,
            Reason::Startup
        )]
    );
    inst
}

/// Feeds `src`'s adverts every second from `first` until `until` (exclusive), firing our timer
/// whenever it is due in between; returns the time we became Master, if we did.
fn feed(
    inst: &mut Instance,
    src: Ipv4Addr,
    prio: u8,
    first: Duration,
    until: Duration,
) -> Option<Duration> {
    let mut t = first;
    while t < until {
        if let Some(due) = inst.poll_timeout().filter(|d| *d <= t) {
            if fire(inst, due) {
                return Some(due);
            }
        }
        assert!(inst.on_advert(advert(src, prio), t).is_empty());
        t += Duration::from_secs(1);
    }
    None
}

/// Fires the timer at `at`; true if that made us Master.
fn fire(inst: &mut Instance, at: Duration) -> bool {
    let out = inst.on_timer(at);
    out.iter().any(|a| {
        matches!(
            a,
            Action::Transition {
                to: State::Master,
                ..
            }
        )
    })
}

#[test]
fn timing_values_match_the_rfc_formulas() {
    let inst = backup(cfg(100));
    assert_eq!(inst.master_adver_interval(), Duration::from_secs(1));
    assert_eq!(inst.skew_time(), Duration::from_micros(609_375));
    assert_eq!(
        inst.master_down_interval(),
        Duration::from_micros(3_609_375)
    );
    let owner = Instance::new(cfg(255));
    assert_eq!(owner.skew_time(), Duration::from_secs(1) / 256);
}

#[test]
fn startup_backup_becomes_master_after_exactly_mdi() {
    let mut inst = backup(cfg(100));
    let mdi = Duration::from_micros(3_609_375);
    assert_eq!(inst.poll_timeout(), Some(mdi));
    // Early calls, including one a nanosecond before the deadline, do nothing.
    for t in [Duration::ZERO, ms(1000), mdi - Duration::from_nanos(1)] {
        assert!(inst.on_timer(t).is_empty());
        assert_eq!(inst.state(), State::Backup);
        assert_eq!(inst.poll_timeout(), Some(mdi));
    }
    let out = inst.on_timer(mdi);
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 100 },
            Action::TakeAddresses,
            transition(State::Backup, State::Master, Reason::MasterDown),
        ]
    );
    assert_eq!(inst.current_master(), Some(LOCAL.into()));
    assert_eq!(inst.poll_timeout(), Some(mdi + Duration::from_secs(1)));
    // The same instant again: nothing more.
    assert!(inst.on_timer(mdi).is_empty());
}

#[test]
fn startup_is_idempotent() {
    let mut inst = backup(cfg(100));
    assert!(inst.startup(ms(5)).is_empty());
    assert_eq!(inst.poll_timeout(), Some(Duration::from_micros(3_609_375)));
}

#[test]
fn owner_becomes_master_at_once() {
    let mut inst = Instance::new(cfg(255));
    let out = inst.startup(ms(7));
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 255 },
            Action::TakeAddresses,
            transition(State::Initialize, State::Master, Reason::OwnerStartup),
        ]
    );
    assert_eq!(inst.poll_timeout(), Some(ms(1007)));
}

#[test]
fn higher_or_equal_priority_adverts_keep_a_backup_a_backup() {
    // Equal priority from a lower address still wins: a Backup never preempts on a tie.
    for (src, prio) in [(PEER, 200), (PEER, 100), (LOW_PEER, 100)] {
        let mut inst = backup(cfg(100));
        let mut t = ms(500);
        while t < Duration::from_secs(30) {
            assert!(inst.on_advert(advert(src, prio), t).is_empty());
            assert_eq!(
                inst.poll_timeout(),
                Some(t + inst.master_down_interval()),
                "timer reset"
            );
            assert!(inst.on_timer(t + ms(999)).is_empty());
            t += Duration::from_secs(1);
        }
        assert_eq!(inst.state(), State::Backup);
        assert_eq!(inst.current_master(), Some(src.into()));
        // When the adverts stop, we take over exactly one MDI after the last one.
        let last = t - Duration::from_secs(1);
        let mdi = inst.master_down_interval();
        assert!(fire(&mut inst, last + mdi));
    }
}

#[test]
fn preempt_on_takes_over_from_lower_priority_master_after_mdi() {
    let mut inst = backup(cfg(200));
    let mdi = inst.master_down_interval();
    let took = feed(&mut inst, LOW_PEER, 100, ms(500), Duration::from_secs(20));
    assert_eq!(
        took,
        Some(mdi),
        "lower-priority adverts must not reset the timer"
    );
    assert_eq!(inst.state(), State::Master);
}

#[test]
fn preempting_reason_names_the_lower_master() {
    let mut inst = backup(cfg(200));
    inst.on_advert(advert(LOW_PEER, 100), ms(500));
    let out = inst.on_timer(inst.poll_timeout().unwrap());
    let reason = Reason::PreemptingLowerPriority {
        src: LOW_PEER.into(),
        priority: 100,
    };
    assert_eq!(
        out.last(),
        Some(&transition(State::Backup, State::Master, reason))
    );
}

#[test]
fn preempt_off_keeps_following_a_lower_priority_master() {
    let mut c = cfg(200);
    c.preempt = false;
    let mut inst = backup(c);
    assert_eq!(
        feed(&mut inst, LOW_PEER, 100, ms(500), Duration::from_secs(30)),
        None
    );
    assert_eq!(inst.state(), State::Backup);
    assert_eq!(inst.current_master(), Some(LOW_PEER.into()));
}

#[test]
fn owner_preempts_even_with_preempt_off() {
    let mut c = cfg(255);
    c.preempt = false;
    let mut inst = Instance::new(c);
    inst.startup(Duration::ZERO);
    // Another owner with a higher address wins the tie, then drops to a lower priority.
    inst.on_advert(advert(PEER, 255), ms(100));
    assert_eq!(inst.state(), State::Backup);
    let mdi = inst.master_down_interval();
    let took = feed(&mut inst, PEER, 100, ms(1100), Duration::from_secs(20));
    assert_eq!(took, Some(ms(100) + mdi));
}

#[test]
fn preempt_delay_is_honoured_against_a_working_master() {
    let mut c = cfg(200);
    c.preempt_delay = Duration::from_secs(10);
    let mut inst = backup(c);
    // Adverts at 0.5, 1.5, ..., 9.5 s are accepted (inside the delay); later ones are not.
    let took = feed(&mut inst, LOW_PEER, 100, ms(500), Duration::from_secs(30)).unwrap();
    let mdi = Duration::from_secs(3) + Duration::from_secs(56) / 256;
    assert_eq!(took, ms(9500) + mdi);
    assert!(took >= Duration::from_secs(10));
}

#[test]
fn preempt_delay_does_not_hold_back_when_no_master_is_seen() {
    let mut c = cfg(200);
    c.preempt_delay = Duration::from_secs(60);
    let mut inst = backup(c);
    let mdi = inst.master_down_interval();
    assert!(fire(&mut inst, mdi));
}

#[test]
fn preempt_delay_restarts_when_the_interface_comes_back() {
    let mut c = cfg(200);
    c.preempt_delay = Duration::from_secs(5);
    let mut inst = backup(c);
    inst.set_interface_up(false, Duration::from_secs(100));
    inst.set_interface_up(true, Duration::from_secs(101));
    let took = feed(
        &mut inst,
        LOW_PEER,
        100,
        ms(101_500),
        Duration::from_secs(130),
    )
    .unwrap();
    // Last accepted advert at 105.5 s (before 101 + 5 = 106 s).
    assert_eq!(took, ms(105_500) + inst.master_down_interval());
}

#[test]
fn priority_zero_means_takeover_after_skew_time_only() {
    let mut inst = backup(cfg(100));
    inst.on_advert(advert(PEER, 200), Duration::from_secs(1));
    assert!(inst
        .on_advert(advert(PEER, 0), Duration::from_secs(2))
        .is_empty());
    assert_eq!(inst.current_master(), None);
    let due = Duration::from_secs(2) + Duration::from_micros(609_375);
    assert_eq!(inst.poll_timeout(), Some(due));
    // A lower-priority advert meanwhile (ignored: we may preempt) changes neither the
    // short timer nor the reason.
    assert!(inst.on_advert(advert(LOW_PEER, 50), ms(2100)).is_empty());
    assert_eq!(inst.poll_timeout(), Some(due));
    assert!(inst.on_timer(due - Duration::from_nanos(1)).is_empty());
    let out = inst.on_timer(due);
    assert_eq!(
        out.last(),
        Some(&transition(
            State::Backup,
            State::Master,
            Reason::MasterLeft
        ))
    );
}

/// `tandemctl vip move` here: the operator chose this node, so the old master's
/// priority-0 advert hands over at once (no Skew_Time), whichever arrives first.
#[test]
fn a_designated_backup_takes_over_without_skew_time() {
    let to_master = |out: &[Action]| {
        out.last()
            == Some(&transition(
                State::Backup,
                State::Master,
                Reason::MasterLeft,
            ))
    };
    // Designated first, then the master leaves.
    let mut inst = backup(cfg(100));
    inst.on_advert(advert(PEER, 200), Duration::from_secs(1));
    assert!(inst.set_designated(true, ms(1500)).is_empty());
    assert!(
        inst.poll_timeout() > Some(ms(2500)),
        "a working master is not preempted by the designation alone"
    );
    inst.on_advert(advert(PEER, 0), Duration::from_secs(2));
    assert_eq!(inst.poll_timeout(), Some(Duration::from_secs(2)));
    assert!(to_master(&inst.on_timer(Duration::from_secs(2))));

    // The master's priority-0 advert first, the designation 5 ms later.
    let mut inst = backup(cfg(100));
    inst.on_advert(advert(PEER, 200), Duration::from_secs(1));
    inst.on_advert(advert(PEER, 0), Duration::from_secs(2));
    assert!(inst.poll_timeout() > Some(ms(2500)), "Skew_Time without it");
    inst.set_designated(true, ms(2005));
    assert_eq!(inst.poll_timeout(), Some(ms(2005)));
    assert!(to_master(&inst.on_timer(ms(2005))));

    // Designation lifted: Skew_Time again.
    let mut inst = backup(cfg(100));
    inst.set_designated(true, ms(500));
    inst.set_designated(false, ms(600));
    inst.on_advert(advert(PEER, 200), Duration::from_secs(1));
    inst.on_advert(advert(PEER, 0), Duration::from_secs(2));
    assert_eq!(
        inst.poll_timeout(),
        Some(Duration::from_secs(2) + Duration::from_micros(609_375))
    );
}

/// The fence saw the master's lease lapse: the backup takes over after one silent advert
/// interval instead of 3 intervals + Skew_Time; a master that still advertises keeps its
/// place.
#[test]
fn a_lapsed_lease_shortens_the_wait_for_a_silent_master() {
    let mut inst = backup(cfg(100));
    inst.on_advert(advert(PEER, 200), Duration::from_secs(1));
    let full = Duration::from_secs(1) + inst.master_down_interval();
    assert_eq!(inst.poll_timeout(), Some(full));
    // Lapsed 0.5 s after the last advert (1 s intervals): due at 1 s + 1 s.
    assert!(inst.set_lease_lapsed(true, ms(1500)).is_empty());
    assert_eq!(inst.poll_timeout(), Some(Duration::from_secs(2)));
    let out = inst.on_timer(Duration::from_secs(2));
    assert_eq!(
        out.last(),
        Some(&transition(
            State::Backup,
            State::Master,
            Reason::MasterLeaseLapsed
        ))
    );

    // Lapsed long after the silence began: at once.
    let mut inst = backup(cfg(100));
    inst.on_advert(advert(PEER, 200), Duration::from_secs(1));
    inst.set_lease_lapsed(true, ms(2500));
    assert_eq!(inst.poll_timeout(), Some(ms(2500)));

    // The master still advertises: its adverts restore the full timer.
    let mut inst = backup(cfg(100));
    inst.on_advert(advert(PEER, 200), Duration::from_secs(1));
    inst.set_lease_lapsed(true, ms(1500));
    inst.on_advert(advert(PEER, 200), Duration::from_secs(2));
    assert_eq!(
        inst.poll_timeout(),
        Some(Duration::from_secs(2) + inst.master_down_interval())
    );
    assert_eq!(
        Reason::MasterLeaseLapsed.to_string(),
        "the master's lease lapsed and no advertisement came for an interval"
    );
}

#[test]
fn backup_adopts_the_masters_interval() {
    let mut inst = backup(cfg(100));
    let slow = Advert {
        src: PEER.into(),
        priority: 200,
        max_advert_int_cs: 300,
    };
    inst.on_advert(slow, Duration::from_secs(1));
    assert_eq!(inst.master_adver_interval(), Duration::from_secs(3));
    // 3 * 3 s + 156 * 3 s / 256.
    let mdi = Duration::from_micros(10_828_125);
    assert_eq!(inst.master_down_interval(), mdi);
    assert_eq!(inst.poll_timeout(), Some(Duration::from_secs(1) + mdi));
    // With our own 1 s interval we would have taken over at 4.609375 s: we must not.
    assert!(inst.on_timer(Duration::from_secs(5)).is_empty());
    assert_eq!(inst.state(), State::Backup);
    // The master speeds up to 50 cs: the Backup follows.
    let fast = Advert {
        max_advert_int_cs: 50,
        ..slow
    };
    inst.on_advert(fast, Duration::from_secs(6));
    assert_eq!(
        inst.master_down_interval(),
        Duration::from_nanos(1_804_687_500)
    );
    assert!(fire(
        &mut inst,
        Duration::from_secs(6) + Duration::from_nanos(1_804_687_500)
    ));
    // As Master we advertise and time with our own interval again.
    assert_eq!(inst.master_adver_interval(), Duration::from_secs(1));
}

#[test]
fn ignored_lower_priority_advert_does_not_change_the_learned_interval() {
    let mut inst = backup(cfg(200));
    let odd = Advert {
        src: LOW_PEER.into(),
        priority: 100,
        max_advert_int_cs: 25,
    };
    inst.on_advert(odd, ms(100));
    assert_eq!(inst.master_adver_interval(), Duration::from_secs(1));
}

/// (preempt, advert priority) against a local priority of 100: is the timer reset?
#[test]
fn backup_advert_table() {
    let cases = [
        (true, 255, true),
        (true, 101, true),
        (true, 100, true),
        (true, 99, false),
        (true, 1, false),
        (false, 200, true),
        (false, 99, true),
        (false, 1, true),
    ];
    for (preempt, prio, resets) in cases {
        let mut c = cfg(100);
        c.preempt = preempt;
        let mut inst = backup(c);
        let before = inst.poll_timeout();
        assert!(inst.on_advert(advert(PEER, prio), ms(2000)).is_empty());
        let expect = if resets {
            Some(ms(2000) + inst.master_down_interval())
        } else {
            before
        };
        assert_eq!(inst.poll_timeout(), expect, "preempt={preempt} prio={prio}");
        assert_eq!(inst.state(), State::Backup);
    }
}

#[test]
fn own_looped_back_adverts_are_ignored() {
    let mut inst = backup(cfg(100));
    let before = inst.poll_timeout();
    assert!(inst.on_advert(advert(LOCAL, 200), ms(10)).is_empty());
    assert_eq!(inst.poll_timeout(), before);
    assert_eq!(inst.current_master(), None);
}

#[test]
fn adverts_outside_backup_and_master_are_ignored() {
    let mut inst = Instance::new(cfg(100));
    assert!(inst.on_advert(advert(PEER, 200), ms(10)).is_empty());
    assert!(inst.on_timer(Duration::from_secs(100)).is_empty());
    assert_eq!(inst.state(), State::Initialize);
}
