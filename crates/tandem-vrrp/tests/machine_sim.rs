//! Two or three simulated instances on a lossless in-memory network with a virtual clock,
//! with random crashes, restarts, shutdowns, link flaps and tracker changes. After the
//! network quiesces for longer than any Master_Down_Interval (plus preempt delay), exactly
//! one running instance is Master and it has the highest effective priority.
//!
//! Ties: RFC 5798 6.4.2 makes a Backup accept an equal-priority advert, so with equal
//! priorities whoever became Master first stays; only two simultaneous Masters settle the
//! tie by address. So the winner is the highest (priority, ip) when the top priority is
//! unique, and one of the top-priority instances otherwise.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::time::Duration;

use proptest::prelude::*;
use tandem_vrrp::machine::{Action, Advert, Instance, InstanceConfig, State};

#[derive(Clone, Debug)]
enum Op {
    /// Dies without a word (no priority-0 advert); the addresses go with it.
    Crash(usize),
    /// Graceful shutdown (priority 0 if Master), then stays in Initialize.
    Shutdown(usize),
    /// Starts again (a fresh instance if it crashed; a no-op if it is running).
    Restart(usize),
    Tracker(usize, i32),
    Link(usize, bool),
}

#[derive(Clone, Debug)]
struct NodeSpec {
    priority: u8,
    interval_cs: u16,
    preempt_delay_ms: u64,
}

struct Node {
    config: InstanceConfig,
    inst: Option<Instance>,
    delta: i32,
    link_up: bool,
    holds_addresses: bool,
}

/// (delivery time, sequence, destination, advert), smallest first.
type Packet = Reverse<(Duration, u64, usize, AdvertKey)>;
type AdvertKey = (Ipv4Addr, u8, u16);

struct Net {
    nodes: Vec<Node>,
    queue: BinaryHeap<Packet>,
    seq: u64,
    now: Duration,
    latency: Duration,
}

impl Net {
    fn new(specs: &[NodeSpec], latency: Duration) -> Net {
        let nodes = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut config = InstanceConfig::new(format!("n{i}"), 7, s.priority, ip(i));
                config.advert_interval = Duration::from_millis(u64::from(s.interval_cs) * 10);
                config.preempt_delay = Duration::from_millis(s.preempt_delay_ms);
                Node {
                    config,
                    inst: None,
                    delta: 0,
                    link_up: true,
                    holds_addresses: false,
                }
            })
            .collect();
        let mut net = Net {
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            now: Duration::ZERO,
            latency,
        };
        for i in 0..net.nodes.len() {
            net.op(&Op::Restart(i));
        }
        net
    }

    /// Calls `f` on node `i`'s instance, checks the transition rules, carries out the actions.
    fn call(&mut self, i: usize, f: impl FnOnce(&mut Instance, Duration) -> Vec<Action>) {
        let now = self.now;
        let Some(inst) = self.nodes[i].inst.as_mut() else {
            return;
        };
        let before = inst.state();
        let out = f(inst, now);
        let after = inst.state();
        let transitions: Vec<_> = out
            .iter()
            .filter_map(|a| match a {
                Action::Transition { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect();
        if before == after {
            assert!(
                transitions.is_empty(),
                "node {i}: transition without a state change: {out:?}"
            );
        } else {
            assert_eq!(
                transitions,
                vec![(before, after)],
                "node {i}: exactly one transition"
            );
        }
        let cs = self.nodes[i].config.advert_interval_cs();
        for action in out {
            match action {
                Action::SendAdvert { priority } => {
                    assert!(self.nodes[i].link_up, "node {i} sent with its link down");
                    for dst in 0..self.nodes.len() {
                        if dst != i && self.nodes[dst].link_up {
                            self.seq += 1;
                            let key = (ip(i), priority, cs);
                            self.queue
                                .push(Reverse((now + self.latency, self.seq, dst, key)));
                        }
                    }
                }
                Action::TakeAddresses => {
                    assert!(!self.nodes[i].holds_addresses, "node {i}: took twice");
                    self.nodes[i].holds_addresses = true;
                }
                Action::ReleaseAddresses => {
                    assert!(
                        self.nodes[i].holds_addresses,
                        "node {i}: released without holding"
                    );
                    self.nodes[i].holds_addresses = false;
                }
                Action::Reannounce => {
                    assert_eq!(after, State::Master, "node {i}: reannounce as non-master")
                }
                Action::Transition { .. } => {}
            }
        }
        assert_eq!(
            self.nodes[i].holds_addresses,
            after == State::Master,
            "node {i}: addresses vs state"
        );
    }

    fn op(&mut self, op: &Op) {
        match *op {
            Op::Crash(i) => {
                self.nodes[i].inst = None;
                self.nodes[i].holds_addresses = false;
            }
            Op::Shutdown(i) => self.call(i, |inst, now| inst.shutdown(now)),
            Op::Restart(i) => {
                let node = &mut self.nodes[i];
                if node.inst.is_none() {
                    let mut inst = Instance::new(node.config.clone());
                    assert!(inst
                        .set_priority_adjustment(node.delta, self.now)
                        .is_empty());
                    assert!(inst.set_interface_up(node.link_up, self.now).is_empty());
                    node.inst = Some(inst);
                }
                self.call(i, |inst, now| inst.startup(now));
            }
            Op::Tracker(i, delta) => {
                self.nodes[i].delta = delta;
                self.call(i, |inst, now| inst.set_priority_adjustment(delta, now));
            }
            Op::Link(i, up) => {
                self.nodes[i].link_up = up;
                self.call(i, |inst, now| inst.set_interface_up(up, now));
            }
        }
    }

    fn next_event(&self) -> Option<Duration> {
        let timers = self
            .nodes
            .iter()
            .filter_map(|n| n.inst.as_ref()?.poll_timeout());
        let packet = self.queue.peek().map(|Reverse((t, ..))| *t);
        timers.chain(packet).min()
    }

    /// Runs every packet and timer due up to and including `until`.
    fn run_until(&mut self, until: Duration) {
        while let Some(t) = self.next_event().filter(|t| *t <= until) {
            self.now = t;
            while let Some(Reverse((at, _, dst, (src, priority, cs)))) = self.queue.peek().cloned()
            {
                if at > t {
                    break;
                }
                self.queue.pop();
                let advert = Advert {
                    src: src.into(),
                    priority,
                    max_advert_int_cs: cs,
                };
                if self.nodes[dst].link_up {
                    self.call(dst, |inst, now| inst.on_advert(advert, now));
                }
            }
            // Every node gets an on_timer call: it must do nothing unless its deadline is due.
            for i in 0..self.nodes.len() {
                let due = self.nodes[i].inst.as_ref().and_then(Instance::poll_timeout);
                let early = due.is_none_or(|d| d > t);
                self.call(i, |inst, now| {
                    let out = inst.on_timer(now);
                    assert!(
                        !early || out.is_empty(),
                        "on_timer before the deadline acted"
                    );
                    out
                });
            }
        }
        self.now = until;
    }
}

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 10 + i as u8)
}

fn spec() -> impl Strategy<Value = NodeSpec> {
    (
        prop::sample::select(vec![50u8, 100, 100, 150, 200, 254, 255]),
        prop::sample::select(vec![50u16, 100, 100, 300]),
        prop::sample::select(vec![0u64, 0, 1500]),
    )
        .prop_map(|(priority, interval_cs, preempt_delay_ms)| NodeSpec {
            priority,
            interval_cs,
            preempt_delay_ms,
        })
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..n).prop_map(Op::Crash),
        1 => (0..n).prop_map(Op::Shutdown),
        3 => (0..n).prop_map(Op::Restart),
        3 => (0..n, prop::sample::select(vec![-120i32, -60, -10, 0, 0, 10, 60, 200])).prop_map(|(i, d)| Op::Tracker(i, d)),
        1 => (0..n, any::<bool>()).prop_map(|(i, up)| Op::Link(i, up)),
    ]
}

fn scenario() -> impl Strategy<Value = (Vec<NodeSpec>, u64, Vec<(u64, Op)>)> {
    (2usize..=3).prop_flat_map(|n| {
        (
            prop::collection::vec(spec(), n),
            0u64..=20,
            prop::collection::vec((0u64..4000, op(n)), 0..24),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn exactly_one_master_with_the_highest_priority_after_quiescence(
        (specs, latency_ms, ops) in scenario()
    ) {
        let mut net = Net::new(&specs, Duration::from_millis(latency_ms));
        for (gap_ms, op) in &ops {
            let t = net.now + Duration::from_millis(*gap_ms);
            net.run_until(t);
            net.op(op);
        }
        // Longest MDI is below 4 * 3 s; add the preempt delay and a margin.
        let quiet = Duration::from_secs(3 * 4 * 2) + Duration::from_millis(1500);
        let end = net.now + quiet;
        net.run_until(end);

        let live: Vec<usize> = (0..net.nodes.len())
            .filter(|&i| net.nodes[i].inst.as_ref().is_some_and(|x| matches!(x.state(), State::Master | State::Backup)))
            .collect();
        let masters: Vec<usize> = (0..net.nodes.len())
            .filter(|&i| net.nodes[i].inst.as_ref().is_some_and(|x| x.state() == State::Master))
            .collect();
        if live.is_empty() {
            prop_assert!(masters.is_empty());
        } else {
            prop_assert_eq!(masters.len(), 1, "masters {:?} among live {:?}", masters, live);
            let prio = |i: usize| net.nodes[i].inst.as_ref().unwrap().effective_priority();
            let top = live.iter().map(|&i| prio(i)).max().unwrap();
            let m = masters[0];
            prop_assert_eq!(prio(m), top, "master {} is not of the highest priority", m);
            let tops: Vec<usize> = live.iter().copied().filter(|&i| prio(i) == top).collect();
            if tops.len() == 1 {
                prop_assert_eq!(m, tops[0]);
            }
            // Every Backup knows who the Master is.
            for &i in &live {
                prop_assert_eq!(net.nodes[i].inst.as_ref().unwrap().current_master(), Some(ip(m).into()));
            }
        }
    }
}
