//! Master-side behaviour (RFC 5798 6.4.3), shutdown, interface faults, heal re-announce.

use std::net::Ipv4Addr;
use std::time::Duration;

use tandem_vrrp::machine::{Action, Advert, ConfigError, Instance, InstanceConfig, Reason, State};

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const HIGH_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);
const LOW_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
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

/// A Master with base priority `priority`, having taken over at exactly its MDI after a
/// startup at 0; returns it and the takeover time.
fn master(config: InstanceConfig) -> (Instance, Duration) {
    let mut inst = Instance::new(config);
    inst.startup(Duration::ZERO);
    if inst.state() == State::Master {
        return (inst, Duration::ZERO);
    }
    let at = inst.poll_timeout().unwrap();
    inst.on_timer(at);
    assert_eq!(inst.state(), State::Master);
    (inst, at)
}

#[test]
fn master_advertises_every_interval() {
    let (mut inst, t0) = master(cfg(100));
    for k in 1..=5u32 {
        let due = t0 + secs(1) * k;
        assert_eq!(inst.poll_timeout(), Some(due));
        assert!(inst.on_timer(due - Duration::from_nanos(1)).is_empty());
        assert_eq!(
            inst.on_timer(due),
            vec![Action::SendAdvert { priority: 100 }]
        );
    }
    // Called 10 ms late: the cadence is kept; called far too late: no burst.
    let due = inst.poll_timeout().unwrap();
    inst.on_timer(due + ms(10));
    assert_eq!(inst.poll_timeout(), Some(due + secs(1)));
    let due = inst.poll_timeout().unwrap();
    assert_eq!(inst.on_timer(due + secs(5)).len(), 1);
    assert_eq!(inst.poll_timeout(), Some(due + secs(6)));
}

#[test]
fn master_yields_to_higher_priority_and_learns_its_interval() {
    let (mut inst, t0) = master(cfg(100));
    let now = t0 + ms(300);
    let higher = Advert {
        src: LOW_IP.into(),
        priority: 150,
        max_advert_int_cs: 200,
    };
    let out = inst.on_advert(higher, now);
    let reason = Reason::Preempted {
        by: LOW_IP.into(),
        priority: 150,
    };
    // A farewell advert (so the winner re-announces), then the yield.
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 100 },
            Action::ReleaseAddresses,
            transition(State::Master, State::Backup, reason)
        ]
    );
    assert_eq!(inst.master_adver_interval(), secs(2));
    // 3 * 2 s + 156 * 2 s / 256.
    assert_eq!(
        inst.master_down_interval(),
        Duration::from_micros(7_218_750)
    );
    assert_eq!(
        inst.poll_timeout(),
        Some(now + Duration::from_micros(7_218_750))
    );
    assert_eq!(inst.current_master(), Some(LOW_IP.into()));
    // The same advert again: no second transition.
    assert!(inst.on_advert(higher, now + secs(2)).is_empty());
}

/// Two Masters with equal priority: the higher primary address wins, both ways round.
#[test]
fn equal_priority_tie_break_by_primary_address() {
    for (peer, we_yield) in [(HIGH_IP, true), (LOW_IP, false)] {
        let (mut inst, t0) = master(cfg(100));
        let out = inst.on_advert(advert(peer, 100), t0 + ms(100));
        if we_yield {
            let reason = Reason::HigherPriorityMaster {
                src: peer.into(),
                priority: 100,
            };
            assert_eq!(
                out,
                vec![
                    Action::SendAdvert { priority: 100 },
                    Action::ReleaseAddresses,
                    transition(State::Master, State::Backup, reason)
                ]
            );
        } else {
            assert_eq!(
                out,
                vec![Action::SendAdvert { priority: 100 }, Action::Reannounce]
            );
            assert_eq!(inst.state(), State::Master);
        }
    }
}

#[test]
fn tie_break_seen_from_both_sides() {
    let mut a = Instance::new(InstanceConfig::new("a", 51, 100, LOW_IP));
    let mut b = Instance::new(InstanceConfig::new("b", 51, 100, HIGH_IP));
    a.startup(Duration::ZERO);
    b.startup(Duration::ZERO);
    // Same priority and interval: both time out at the same instant (dual master).
    let t = a.poll_timeout().unwrap();
    assert_eq!(b.poll_timeout(), Some(t));
    a.on_timer(t);
    b.on_timer(t);
    let from_a = a.on_advert(advert(HIGH_IP, 100), t);
    let from_b = b.on_advert(advert(LOW_IP, 100), t);
    assert_eq!(a.state(), State::Backup);
    assert_eq!(b.state(), State::Master);
    assert!(from_a.contains(&Action::ReleaseAddresses));
    assert!(from_b.contains(&Action::Reannounce));
}

/// An IPv6 instance runs the same machine: the tie-break compares link-local addresses
/// as 128-bit numbers, and the peer named in the reason is the IPv6 one.
#[test]
fn ipv6_tie_break_compares_link_local_addresses() {
    let low: std::net::Ipv6Addr = "fe80::ff:fe00:1".parse().unwrap();
    let high: std::net::Ipv6Addr = "fe80::ff:fe00:2".parse().unwrap();
    let mut a = Instance::new(InstanceConfig::new("a", 51, 100, low));
    let mut b = Instance::new(InstanceConfig::new("b", 51, 100, high));
    a.startup(Duration::ZERO);
    b.startup(Duration::ZERO);
    let t = a.poll_timeout().unwrap();
    a.on_timer(t);
    b.on_timer(t);
    let v6 = |src: std::net::Ipv6Addr| Advert {
        src: src.into(),
        priority: 100,
        max_advert_int_cs: 100,
    };
    let from_a = a.on_advert(v6(high), t);
    let from_b = b.on_advert(v6(low), t);
    assert_eq!(a.state(), State::Backup);
    assert_eq!(a.current_master(), Some(high.into()));
    assert!(from_a.contains(&transition(
        State::Master,
        State::Backup,
        Reason::HigherPriorityMaster {
            src: high.into(),
            priority: 100
        }
    )));
    assert_eq!(b.state(), State::Master);
    assert!(from_b.contains(&Action::Reannounce));
}

#[test]
fn lower_priority_rogue_gets_an_advert_and_a_reannounce() {
    let (mut inst, t0) = master(cfg(100));
    let now = t0 + ms(400);
    let rogue = Advert {
        src: HIGH_IP.into(),
        priority: 50,
        max_advert_int_cs: 25,
    };
    let out = inst.on_advert(rogue, now);
    assert_eq!(
        out,
        vec![Action::SendAdvert { priority: 100 }, Action::Reannounce]
    );
    assert_eq!(inst.state(), State::Master);
    assert_eq!(
        inst.poll_timeout(),
        Some(now + secs(1)),
        "Adver_Timer reset"
    );
    // A Master keeps its own interval whatever the rogue advertises.
    assert_eq!(inst.master_adver_interval(), secs(1));
    assert_eq!(inst.current_master(), Some(LOCAL.into()));
}

#[test]
fn priority_zero_to_a_master_triggers_an_immediate_advert() {
    let (mut inst, t0) = master(cfg(100));
    let now = t0 + ms(200);
    let out = inst.on_advert(advert(HIGH_IP, 0), now);
    assert_eq!(out, vec![Action::SendAdvert { priority: 100 }]);
    assert_eq!(inst.poll_timeout(), Some(now + secs(1)));
}

#[test]
fn heal_after_silence_reannounces() {
    let (mut inst, t0) = master(cfg(100));
    let mdi = inst.master_down_interval();
    // Within MDI of becoming Master: a leaving peer is no heal.
    assert_eq!(
        inst.on_advert(advert(HIGH_IP, 0), t0 + secs(1)),
        vec![Action::SendAdvert { priority: 100 }]
    );
    // Seen again after a silence longer than MDI: caches may point elsewhere.
    let later = t0 + secs(1) + mdi + ms(1);
    assert_eq!(
        inst.on_advert(advert(HIGH_IP, 0), later),
        vec![Action::SendAdvert { priority: 100 }, Action::Reannounce]
    );
    // Right after: no longer a heal.
    assert_eq!(
        inst.on_advert(advert(HIGH_IP, 0), later + ms(10)),
        vec![Action::SendAdvert { priority: 100 }]
    );
}

#[test]
fn heal_that_makes_us_backup_does_not_reannounce() {
    let (mut inst, t0) = master(cfg(100));
    let out = inst.on_advert(advert(HIGH_IP, 200), t0 + secs(60));
    assert!(!out.contains(&Action::Reannounce));
    assert_eq!(inst.state(), State::Backup);
}

#[test]
fn shutdown_as_master_sends_priority_zero_and_releases() {
    let (mut inst, t0) = master(cfg(100));
    let out = inst.shutdown(t0 + ms(10));
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::ReleaseAddresses,
            transition(State::Master, State::Initialize, Reason::Shutdown),
        ]
    );
    assert_eq!(inst.poll_timeout(), None);
    assert_eq!(inst.current_master(), None);
    assert!(inst.shutdown(t0 + ms(20)).is_empty());
    // It can be started again.
    assert_eq!(inst.startup(t0 + ms(30)).len(), 1);
    assert_eq!(inst.state(), State::Backup);
}

#[test]
fn shutdown_as_backup_only_transitions() {
    let mut inst = Instance::new(cfg(100));
    inst.startup(Duration::ZERO);
    assert_eq!(
        inst.shutdown(ms(5)),
        vec![transition(
            State::Backup,
            State::Initialize,
            Reason::Shutdown
        )]
    );
}

#[test]
fn step_down_as_master_sends_priority_zero_releases_and_waits_as_backup() {
    let (mut inst, t0) = master(cfg(100));
    let now = t0 + ms(250);
    let out = inst.step_down(now);
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::ReleaseAddresses,
            transition(State::Master, State::Backup, Reason::SteppedDown),
        ]
    );
    assert_eq!(inst.state(), State::Backup);
    assert_eq!(inst.current_master(), None);
    assert_eq!(inst.poll_timeout(), Some(now + inst.master_down_interval()));
    assert_eq!(Reason::SteppedDown.to_string(), "moved by the operator");
    // A second call, now as Backup, does nothing.
    assert!(inst.step_down(now + ms(1)).is_empty());
    assert_eq!(inst.poll_timeout(), Some(now + inst.master_down_interval()));
}

#[test]
fn step_down_outside_master_is_a_no_op() {
    let mut inst = Instance::new(cfg(100));
    assert!(inst.step_down(ms(1)).is_empty(), "Initialize");
    inst.startup(ms(2));
    let due = inst.poll_timeout();
    assert!(inst.step_down(ms(3)).is_empty(), "Backup");
    assert_eq!(inst.state(), State::Backup);
    assert_eq!(
        inst.poll_timeout(),
        due,
        "the Master_Down_Timer is untouched"
    );
    inst.set_interface_up(false, ms(4));
    assert!(inst.step_down(ms(5)).is_empty(), "Fault");
    assert_eq!(inst.state(), State::Fault);
}

/// The operator moves the group away from A (150, preempt on) to B (100): A is demoted
/// (adjustment -255, priority 1) and steps down; B takes over after its Skew_Time; A, a
/// Backup at priority 1, keeps following B and never preempts back until the demotion is
/// lifted.
#[test]
fn a_demoted_master_hands_over_and_does_not_preempt_back() {
    let (mut a, t0) = master(cfg(150));
    assert!(a.config().preempt);
    let mut b = Instance::new(InstanceConfig::new("vi_test", 51, 100, LOW_IP));
    b.startup(Duration::ZERO);
    let mut now = t0 + ms(100);
    b.on_advert(advert(LOCAL, 150), now);

    now += ms(100);
    let mut out = a.step_down(now);
    out.extend(a.set_priority_adjustment(-255, now));
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::ReleaseAddresses,
            transition(State::Master, State::Backup, Reason::SteppedDown),
        ],
        "no advert at the lowered priority: A is a Backup by then"
    );
    assert_eq!(a.effective_priority(), 1);

    // B hears the priority-0 advert and takes over after its Skew_Time only.
    assert!(b.on_advert(advert(LOCAL, 0), now).is_empty());
    let due = b.poll_timeout().unwrap();
    assert_eq!(due, now + b.skew_time());
    let out = b.on_timer(due);
    assert!(out.contains(&Action::TakeAddresses));
    assert_eq!(
        out.last(),
        Some(&transition(
            State::Backup,
            State::Master,
            Reason::MasterLeft
        ))
    );

    // From then on B advertises 100 every interval; A (priority 1) accepts every advert.
    now = due;
    for _ in 0..20 {
        assert!(a.on_advert(advert(LOW_IP, 100), now).is_empty());
        assert_eq!(a.state(), State::Backup);
        assert_eq!(a.poll_timeout(), Some(now + a.master_down_interval()));
        assert!(a.on_timer(now + ms(999)).is_empty());
        now += secs(1);
    }
    assert_eq!(a.current_master(), Some(LOW_IP.into()));

    // Demotion lifted: A is 150 again and preempts B by letting its timer run out.
    let due = a.poll_timeout().unwrap();
    assert!(a.set_priority_adjustment(0, now).is_empty());
    assert!(a.on_advert(advert(LOW_IP, 100), now).is_empty());
    assert_eq!(
        a.poll_timeout(),
        Some(due),
        "B's adverts no longer reset the timer"
    );
    let out = a.on_timer(due);
    assert_eq!(
        out.last(),
        Some(&transition(
            State::Backup,
            State::Master,
            Reason::PreemptingLowerPriority {
                src: LOW_IP.into(),
                priority: 100
            }
        ))
    );
}

#[test]
fn interface_down_faults_and_up_restarts_as_backup() {
    let (mut inst, t0) = master(cfg(100));
    let down = t0 + ms(100);
    assert_eq!(
        inst.set_interface_up(false, down),
        vec![
            Action::ReleaseAddresses,
            transition(State::Master, State::Fault, Reason::InterfaceDown)
        ]
    );
    assert_eq!(inst.poll_timeout(), None);
    assert!(
        inst.set_interface_up(false, down + ms(1)).is_empty(),
        "no duplicate"
    );
    assert!(inst
        .on_advert(advert(HIGH_IP, 200), down + ms(2))
        .is_empty());
    assert!(inst.on_timer(down + secs(100)).is_empty());
    let up = down + secs(10);
    assert_eq!(
        inst.set_interface_up(true, up),
        vec![transition(State::Fault, State::Backup, Reason::InterfaceUp)]
    );
    assert_eq!(inst.poll_timeout(), Some(up + inst.master_down_interval()));
    assert!(
        inst.set_interface_up(true, up + ms(1)).is_empty(),
        "no duplicate"
    );
}

#[test]
fn owner_interface_up_is_master_at_once() {
    let (mut inst, _) = master(cfg(255));
    inst.set_interface_up(false, secs(1));
    let out = inst.set_interface_up(true, secs(2));
    assert_eq!(
        out,
        vec![
            Action::SendAdvert { priority: 255 },
            Action::TakeAddresses,
            transition(State::Fault, State::Master, Reason::InterfaceUp),
        ]
    );
}

#[test]
fn startup_with_interface_down_is_fault() {
    let mut inst = Instance::new(cfg(100));
    assert!(inst.set_interface_up(false, Duration::ZERO).is_empty());
    assert_eq!(
        inst.startup(ms(1)),
        vec![transition(
            State::Initialize,
            State::Fault,
            Reason::InterfaceDown
        )]
    );
    assert_eq!(inst.poll_timeout(), None);
    inst.set_interface_up(true, ms(2));
    assert_eq!(inst.state(), State::Backup);
}

#[test]
fn config_validation_and_clamping() {
    assert_eq!(cfg(100).validate(), Ok(()));
    assert_eq!(cfg(0).validate(), Err(ConfigError::PriorityZero));
    let mut c = cfg(100);
    c.vrid = 0;
    assert_eq!(c.validate(), Err(ConfigError::VridZero));
    for bad in [Duration::ZERO, ms(5), ms(41_000)] {
        let mut c = cfg(100);
        c.advert_interval = bad;
        assert_eq!(c.validate(), Err(ConfigError::IntervalOutOfRange(bad)));
    }
    let mut c = cfg(100);
    c.advert_interval = ms(1005);
    assert_eq!(
        c.validate(),
        Err(ConfigError::IntervalNotCentiseconds(ms(1005)))
    );
    // `new` never fails: it clamps to what the wire can carry.
    let inst = Instance::new(c);
    assert_eq!(inst.config().advert_interval, secs(1));
    assert_eq!(inst.config().advert_interval_cs(), 100);
    assert_eq!(Instance::new(cfg(0)).effective_priority(), 1);
}

#[test]
fn reasons_read_well() {
    let ip = HIGH_IP;
    let all = [
        Reason::Startup,
        Reason::OwnerStartup,
        Reason::MasterDown,
        Reason::Preempted {
            by: ip.into(),
            priority: 9,
        },
        Reason::HigherPriorityMaster {
            src: ip.into(),
            priority: 9,
        },
        Reason::PreemptingLowerPriority {
            src: ip.into(),
            priority: 9,
        },
        Reason::MasterLeft,
        Reason::InterfaceDown,
        Reason::InterfaceUp,
        Reason::Shutdown,
        Reason::SteppedDown,
        Reason::PriorityChanged,
    ];
    let texts: Vec<String> = all.iter().map(ToString::to_string).collect();
    for (r, t) in all.iter().zip(&texts) {
        assert!(!t.is_empty());
        if matches!(
            r,
            Reason::Preempted { .. }
                | Reason::HigherPriorityMaster { .. }
                | Reason::PreemptingLowerPriority { .. }
        ) {
            assert!(t.contains("10.0.0.20") && t.contains('9'), "{t}");
        }
    }
    let mut unique = texts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), texts.len());
}
