//! Impaired links and random faults: one-way cuts, loss, frozen members, and a randomized
//! runner that mixes them, each with availability floors and the no-overlap rule.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tandem_tests::cluster_lab::{metric, ClusterLab, Observer, WITNESS};

use super::faults::{
    assert_no_overlap, cut, expect_holder, heal, held_share, impair, settle_on, Rng,
};
use super::CRASH_BOUND;

/// Impaired links between the nodes, the clients' traffic untouched: a one-way cut in each
/// direction for the holder, a one-way cut for the backup, random loss both ways, and a
/// frozen witness under loss. Each case asserts who holds, how soon, and the share of
/// time with exactly one holder; the whole drill asserts no overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lossy_and_one_way_links_keep_the_vip_held() {
    let mut cl = ClusterLab::start().await;
    let observer = Observer::start(&cl);
    let origin = Instant::now()
        - observer
            .now()
            .changes
            .first()
            .map_or(Duration::ZERO, |c| c.0);
    let at = |o: Instant| o.saturating_duration_since(origin);
    settle_on(&cl, &observer, 0, Duration::from_secs(10), "start").await;

    // (1) The holder hears nothing from its peers but still sends: its lease lapses and it
    // falls silent (Fault), so n2 takes over instead of staying BACKUP behind its adverts.
    let start = Instant::now();
    impair(&cl, "deaf", &[(1, 0), (WITNESS, 0)], "");
    let took = expect_holder(&cl, &observer, 1, Duration::from_secs(5), "holder deaf").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let share = held_share(&observer.now(), at(start), at(Instant::now()));
    println!(
        "one-way cut, holder deaf: n2 holds after {took:?}; held {:.1} % of 3 s+",
        share * 100.0
    );
    if std::env::var_os("DRILL_LOGS").is_some() {
        println!("--- n1 ---\n{}\n--- n2 ---\n{}", cl.log(0), cl.log(1));
    }
    // The deaf node says why it stepped aside: Fault, no lease to be had.
    let n1 = cl.metrics(0).await;
    assert_eq!(
        metric(&n1, r#"tandem_vrrp_fenced_out{group="front"}"#),
        Some(1.0),
        "{n1}"
    );
    assert_eq!(
        metric(&n1, r#"tandem_vip_lease_able{group="front"}"#),
        Some(0.0),
        "{n1}"
    );
    // The holder here also leads Raft: its heartbeats still reach the followers, which
    // refuse it once it has not acked their answers for 200 ms, then elect; the holder
    // says it cannot hold after two election timeouts, and the backup, whose lease view
    // has lapsed by then, takes over at its priority-0 advert. Within the crash bound
    // (issue 11).
    assert!(
        took <= CRASH_BOUND,
        "deaf holder: n2 took {took:?}\n{}",
        cl.logs()
    );
    heal(&cl);
    settle_on(
        &cl,
        &observer,
        0,
        Duration::from_secs(15),
        "after heal (deaf)",
    )
    .await;

    // (2) The holder's messages to its peers are lost, it still hears them: n2 stops
    // hearing its adverts and takes over under a new lease.
    let start = Instant::now();
    impair(&cl, "mute", &[(0, 1), (0, WITNESS)], "");
    let took = expect_holder(&cl, &observer, 1, Duration::from_secs(5), "holder mute").await;
    println!("one-way cut, holder mute: n2 holds after {took:?}");
    assert!(
        took <= CRASH_BOUND,
        "mute holder: n2 took {took:?}\n{}",
        cl.logs()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let share = held_share(&observer.now(), at(start), at(Instant::now()));
    println!("  held {:.1} %", share * 100.0);
    heal(&cl);
    settle_on(
        &cl,
        &observer,
        0,
        Duration::from_secs(15),
        "after heal (mute)",
    )
    .await;

    // (3) The backup deaf. After (1) and (2) it usually leads Raft, and a deaf leader keeps
    // its followers from electing until its connections time out, so the holder's renewals
    // stall for a while (the gap this drill measures; see docs/cluster.md).
    let start = Instant::now();
    impair(&cl, "backup_deaf", &[(0, 1), (WITNESS, 1)], "");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let seen = observer.now();
    let share = held_share(&seen, at(start), at(Instant::now()));
    let holders = seen.changes.last().map(|(_, h)| h.len());
    println!(
        "one-way cut, backup deaf: held {:.1} % of 4 s",
        share * 100.0
    );
    assert!(
        share >= 0.5 && holders == Some(1),
        "deaf backup: held {:.1} %, holders now {holders:?}\n{}",
        share * 100.0,
        cl.logs()
    );
    heal(&cl);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // (4) Random loss on every node-to-node link, both ways: 10 %, then 30 %.
    let links = [
        (0, 1),
        (1, 0),
        (0, WITNESS),
        (WITNESS, 0),
        (1, WITNESS),
        (WITNESS, 1),
    ];
    // Floors sit under this machine's measurements (10 %: 100 %, 30 %: 94 %, with the
    // cluster transport's 20 ms minimum RTO): issue 11's goal (99 % at 30 %) is not met yet,
    // see docs/cluster.md.
    for (pct, floor) in [(10, 0.95), (30, 0.5)] {
        let start = Instant::now();
        impair(
            &cl,
            "loss",
            &links,
            &format!("numgen random mod 100 < {pct}"),
        );
        tokio::time::sleep(Duration::from_secs(8)).await;
        let seen = observer.now();
        let share = held_share(&seen, at(start), at(Instant::now()));
        let moves = seen.changes.iter().filter(|(t, _)| *t >= at(start)).count();
        println!(
            "{pct} % loss each way for 8 s: held {:.2} % of the time, {moves} changes",
            share * 100.0
        );
        heal(&cl);
        assert!(
            share >= floor,
            "{pct} % loss: the VIP was held {:.1} % of the time (floor {:.0} %)\n{}",
            share * 100.0,
            floor * 100.0,
            cl.logs()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // (5) The witness frozen while 20 % of the pair's messages are lost: the two forwarding
    // nodes still make a majority, and the VIP stays held.
    expect_holder(
        &cl,
        &observer,
        0,
        Duration::from_secs(15),
        "before the frozen witness",
    )
    .await;
    let start = Instant::now();
    cl.signal(WITNESS, Signal::SIGSTOP);
    impair(&cl, "loss", &[(0, 1), (1, 0)], "numgen random mod 100 < 20");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let share = held_share(&observer.now(), at(start), at(Instant::now()));
    heal(&cl);
    cl.signal(WITNESS, Signal::SIGCONT);
    println!(
        "witness frozen, 20 % loss between the pair: held {:.2} %",
        share * 100.0
    );
    // Measured 97 % on this machine: with the witness frozen, every renewal needs the lossy
    // pair link (docs/cluster.md, "Availability under impairment").
    assert!(
        share >= 0.6,
        "frozen witness + loss: held {:.1} %\n{}",
        share * 100.0,
        cl.logs()
    );

    let seen = observer.finish();
    println!(
        "observer: {} samples, changes {:?}",
        seen.samples, seen.changes
    );
    assert_no_overlap(&cl, &seen);
}

/// Random faults, often two at a time (a crash, freeze, isolation, one-way cut, witness
/// loss or planned move, half the time over random loss on every node-to-node link),
/// bounded: TANDEM_DRILL_ITERATIONS (default 20, what CI runs; the long mode for people is
/// `TANDEM_DRILL_ITERATIONS=500`, about two hours) and TANDEM_DRILL_SEED to replay a run
/// (the seed is printed first).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn randomized_drills_never_make_two_holders() {
    let iterations: u32 = std::env::var("TANDEM_DRILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("TANDEM_DRILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("randomized drills: seed {seed} (replay with TANDEM_DRILL_SEED={seed}), {iterations} iterations");
    let mut rng = Rng(seed);
    let mut cl = ClusterLab::start().await;
    let observer = Observer::start(&cl);
    expect_holder(&cl, &observer, 0, Duration::from_secs(10), "start").await;
    for round in 0..iterations {
        let holder = observer
            .now()
            .changes
            .last()
            .and_then(|(_, h)| h.first().copied())
            .unwrap_or(0);
        let other = 1 - holder;
        let fault = rng.next(7);
        // Half the rounds run over background loss on every link between the nodes.
        let loss = [0, 0, 0, 5, 10, 20][rng.next(6) as usize];
        println!(
            "round {round}: fault {fault} with n{} holding, {loss} % loss",
            holder + 1
        );
        if loss > 0 {
            let links = [
                (0, 1),
                (1, 0),
                (0, WITNESS),
                (WITNESS, 0),
                (1, WITNESS),
                (WITNESS, 1),
            ];
            impair(
                &cl,
                "rand_loss",
                &links,
                &format!("numgen random mod 100 < {loss}"),
            );
        }
        // Under loss a takeover may need a few more rounds of renewals.
        let slack = Duration::from_secs(if loss > 0 { 10 } else { 0 });
        match fault {
            0 => {
                cl.kill(holder).await;
                expect_holder(
                    &cl,
                    &observer,
                    other,
                    Duration::from_secs(8) + slack,
                    "kill",
                )
                .await;
                cl.start_node(holder);
                cl.wait_admin(holder).await;
            }
            1 => {
                cl.signal(holder, Signal::SIGSTOP);
                expect_holder(
                    &cl,
                    &observer,
                    other,
                    Duration::from_secs(8) + slack,
                    "stop",
                )
                .await;
                cl.signal(holder, Signal::SIGCONT);
            }
            2 => {
                cut(&cl, "rand", &[(holder, other), (holder, WITNESS)]);
                expect_holder(
                    &cl,
                    &observer,
                    other,
                    Duration::from_secs(10) + slack,
                    "isolate",
                )
                .await;
            }
            5 => {
                // One-way: the holder hears nothing from its peers.
                impair(&cl, "rand_deaf", &[(other, holder), (WITNESS, holder)], "");
                expect_holder(
                    &cl,
                    &observer,
                    other,
                    Duration::from_secs(10) + slack,
                    "deaf",
                )
                .await;
            }
            6 => {
                // The witness frozen a while: the pair alone keeps the majority.
                cl.signal(WITNESS, Signal::SIGSTOP);
                tokio::time::sleep(Duration::from_millis(rng.next(3000) + 500)).await;
                cl.signal(WITNESS, Signal::SIGCONT);
            }
            3 => {
                cl.kill(WITNESS).await;
                tokio::time::sleep(Duration::from_millis(rng.next(3000) + 500)).await;
                cl.start_node(WITNESS);
                cl.wait_admin(WITNESS).await;
            }
            _ => {
                let name = format!("n{}", other + 1);
                cl.ctl_ok(holder, &["vip", "move", "front", &name]);
                expect_holder(
                    &cl,
                    &observer,
                    other,
                    Duration::from_secs(5) + slack,
                    "move",
                )
                .await;
                cl.ctl_ok(other, &["vip", "move", "front", "--auto"]);
            }
        }
        heal(&cl);
        assert!(
            cl.wait_voters(3, Duration::from_secs(15)).await,
            "round {round}: cluster not whole again\n{}",
            cl.logs()
        );
        // Settle: exactly one holder (n1 by priority), then the next fault.
        expect_holder(&cl, &observer, 0, Duration::from_secs(15), "settle").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            observer.now().overlaps,
            0,
            "round {round} (seed {seed}): two holders\n{}",
            cl.logs()
        );
    }
    let seen = observer.finish();
    println!(
        "observer: {} samples, changes {:?}",
        seen.samples, seen.changes
    );
    assert_no_overlap(&cl, &seen);
}
