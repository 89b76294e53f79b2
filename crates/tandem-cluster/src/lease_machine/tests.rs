//! The lease machine's rules, one input at a time on a virtual clock.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn held_by(holder: NodeId, seq: u64) -> Lease {
    Lease {
        holder: Some(holder),
        epoch: 1,
        seq,
    }
}

/// A backup learns that the holder's lease lapsed one contender wait after the last
/// renewal it applied, is ticked for it without wanting the group, and forgets it when
/// a renewal or a new holder shows up.
#[test]
fn another_holders_lease_lapses_after_the_contender_wait() {
    let timing = LeaseTiming::default();
    let wait = timing.contender_wait();
    let mut m = LeaseMachine::new("vip", 2, timing);
    m.on_applied(held_by(1, 5), None, 10, ms(1000));
    m.tick(ms(1000));
    assert!(!m.lapsed());
    assert_eq!(
        m.next_deadline(),
        Some(ms(1000) + wait),
        "ticked at the lapse"
    );
    m.tick(ms(1000) + wait - ms(1));
    assert!(!m.lapsed());
    m.tick(ms(1000) + wait);
    assert!(m.lapsed());
    assert_eq!(m.next_deadline(), None, "no spinning once lapsed");
    // A renewal applied: alive again.
    m.on_applied(held_by(1, 6), None, 11, ms(1000) + wait + ms(5));
    m.tick(ms(1000) + wait + ms(5));
    assert!(!m.lapsed());
    // Its own lease, or none at all, never lapses.
    let mut own = LeaseMachine::new("vip", 1, timing);
    own.on_applied(held_by(1, 6), None, 11, ms(0));
    own.tick(ms(10_000));
    assert!(!own.lapsed());
    let mut free = LeaseMachine::new("vip", 2, timing);
    free.on_applied(Lease::default(), None, 0, ms(0));
    free.tick(ms(10_000));
    assert!(!free.lapsed());
}

/// Node 1, wanting the group, acquired an empty lease at 0 ms, confirmed at 10 ms.
fn holding_from_10ms(timing: LeaseTiming) -> LeaseMachine {
    let mut m = LeaseMachine::new("vip", 1, timing);
    m.on_applied(Lease::default(), None, 0, ms(0));
    m.set_wants(true);
    m.tick(ms(0));
    let acquire = m.poll_proposal().expect("acquires an empty lease at once");
    m.on_outcome(acquire.id, 1, &granted(1, 0), ms(10));
    m.on_applied(held_by(1, 0), None, 1, ms(10));
    m
}

fn granted(holder: NodeId, seq: u64) -> Outcome {
    Outcome::LeaseGranted {
        group: "vip".into(),
        lease: held_by(holder, seq),
    }
}

/// A renewal whose answer never comes does not hold up the next one: renewals go out
/// every `renew_every` while earlier ones are unanswered (bounded by a hold window's
/// worth), and the latest confirmed send sets the hold window.
#[test]
fn renewals_are_pipelined_past_a_lost_one() {
    let timing = LeaseTiming::default();
    let mut m = LeaseMachine::new("vip", 1, timing);
    m.on_applied(Lease::default(), None, 0, ms(0));
    m.set_wants(true);
    m.tick(ms(0));
    let acquire = m.poll_proposal().expect("acquires an empty lease at once");
    assert_eq!(acquire.kind, ProposalKind::Acquire);
    m.on_outcome(acquire.id, 1, &granted(1, 0), ms(20));
    m.on_applied(held_by(1, 0), None, 1, ms(20));
    assert_eq!(m.permit(), Some(timing.hold_window()));

    // First renewal at 100 ms; its answer is lost.
    m.tick(ms(100));
    let lost = m.poll_proposal().expect("renews after renew_every");
    assert_eq!(lost.kind, ProposalKind::Renew);
    // Nothing more before the next renew period, then a second renewal although the
    // first is unanswered.
    m.tick(ms(150));
    assert!(m.poll_proposal().is_none(), "one renewal per renew period");
    assert_eq!(m.next_deadline(), Some(ms(200)));
    m.tick(ms(200));
    let second = m
        .poll_proposal()
        .expect("a lost renewal does not block the next");
    assert_eq!(second.kind, ProposalKind::Renew);
    m.on_outcome(second.id, 3, &granted(1, 2), ms(230));
    assert_eq!(m.permit(), Some(ms(200) + timing.hold_window()));
    // The lost one's late answer cannot move the window back.
    m.on_outcome(lost.id, 2, &granted(1, 1), ms(240));
    assert_eq!(m.permit(), Some(ms(200) + timing.hold_window()));

    // With every answer lost, at most a hold window's worth is in flight.
    let most = (timing.hold_window().as_millis() / timing.renew_every.as_millis()) as usize;
    let mut sent = 0;
    for step in 3..7u64 {
        m.tick(ms(step * 100));
        sent += usize::from(m.poll_proposal().is_some());
    }
    assert_eq!(sent, most, "bounded by hold_window / renew_every");
}

/// A planned handover does not wait for renewals in flight, and their late
/// confirmations do not bring the hold back.
#[test]
fn release_goes_out_past_renewals_in_flight() {
    let timing = LeaseTiming::default();
    let mut m = holding_from_10ms(timing);
    m.tick(ms(100));
    let renew = m.poll_proposal().unwrap();
    m.set_wants(false);
    m.tick(ms(120));
    let release = m
        .poll_proposal()
        .expect("releases with a renewal in flight");
    assert_eq!(release.kind, ProposalKind::Release);
    assert_eq!(m.permit(), None, "the hold ends before the Release is sent");
    m.on_outcome(renew.id, 2, &granted(1, 1), ms(130));
    assert_eq!(
        m.permit(),
        None,
        "a renewal sent before the release confirms nothing"
    );
    m.tick(ms(250));
    assert!(
        m.poll_proposal().is_none(),
        "nothing else while the Release is out"
    );
}

/// An Acquire sent to a leader that died or went deaf does not hold up the next: one
/// goes out every `renew_every` while none is answered, and the granted one holds.
#[test]
fn acquires_are_pipelined_past_a_dead_leader() {
    let timing = LeaseTiming::default();
    let mut m = LeaseMachine::new("vip", 2, timing);
    m.on_applied(held_by(1, 5), None, 10, ms(0));
    m.set_wants(true);
    let wait = timing.contender_wait();
    m.tick(wait - ms(1));
    assert!(m.poll_proposal().is_none(), "not before the contender wait");
    assert_eq!(m.next_deadline(), Some(wait));
    m.tick(wait);
    let lost = m.poll_proposal().expect("acquires once the lease lapsed");
    assert_eq!(lost.kind, ProposalKind::Acquire);
    m.tick(wait + ms(50));
    assert!(m.poll_proposal().is_none(), "one per renew period");
    assert_eq!(m.next_deadline(), Some(wait + timing.renew_every));
    m.tick(wait + timing.renew_every);
    let second = m
        .poll_proposal()
        .expect("the next Acquire goes without an answer");
    assert_eq!(second.kind, ProposalKind::Acquire);
    assert_eq!(
        second.command, lost.command,
        "both name the version they saw"
    );
    let granted = Outcome::LeaseGranted {
        group: "vip".into(),
        lease: Lease {
            holder: Some(2),
            epoch: 2,
            seq: 0,
        },
    };
    m.on_outcome(second.id, 11, &granted, wait + ms(120));
    assert_eq!(
        m.permit(),
        Some(wait + timing.renew_every + timing.hold_window())
    );
    // The first one, if it ever commits, is refused (the version changed): no harm.
    let refused = Outcome::LeaseRefused {
        group: "vip".into(),
        current: Lease {
            holder: Some(2),
            epoch: 2,
            seq: 0,
        },
    };
    m.on_outcome(lost.id, 12, &refused, wait + ms(130));
    assert!(m.may_hold(wait + ms(130)));
}

/// A holder that hears no answer for the hold window and the kernel's lateness, its
/// hold ended unconfirmed, releases the lease (a node that can send but not hear would otherwise keep
/// renewing a lease it cannot use) and cannot hold until an answer comes.
#[test]
fn an_unanswered_holder_releases_and_steps_aside() {
    let timing = LeaseTiming::default();
    let mut m = holding_from_10ms(timing);
    let until = timing.hold_window();
    // Renewals go out, none is answered.
    let mut t = ms(100);
    while t < until + timing.kernel_late {
        m.tick(t);
        let _ = m.poll_proposal();
        t += ms(10);
    }
    m.tick(until + timing.kernel_late);
    assert!(
        m.poll_proposal()
            .is_none_or(|p| p.kind == ProposalKind::Renew),
        "the last answer (the Acquire's, at 10 ms) is not a hold window and the kernel's \
         lateness old yet"
    );
    assert!(m.able(), "still able before then");
    m.tick(ms(10) + timing.hold_window() + timing.kernel_late);
    let release = m.poll_proposal().expect("releases the lease it cannot use");
    assert_eq!(release.kind, ProposalKind::Release);
    assert!(!m.able(), "steps aside until the cluster answers");
    assert_eq!(m.permit(), None);
    // The Release's answer proves it hears again.
    let released = Outcome::LeaseGranted {
        group: "vip".into(),
        lease: Lease::default(),
    };
    m.on_outcome(release.id, 9, &released, until + ms(200));
    m.tick(until + ms(200));
    assert!(m.able(), "able again once answered");
}
