//! One fence link for several instances of one group: a dual-stack `vip_group` runs an
//! IPv4 and an IPv6 VRRP instance (RFC 5798: an instance is of one family), and the lease
//! must treat the group as one unit. [`SharedFence`] attaches each shared group to the
//! inner fence once, gives every instance the same permit and flags, and wants the lease
//! while any of the group's instances wants to be master.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

use super::fence::{Fence, FenceLink, Permit};
use super::kernel_fence::KernelFence;

pub struct SharedFence {
    inner: Arc<dyn Fence>,
    shared: HashSet<String>,
    links: Mutex<HashMap<String, GroupShare>>,
}

/// The inner link of one shared group, and what each member instance last wanted.
struct GroupShare {
    permit: watch::Receiver<Permit>,
    demoted: watch::Receiver<bool>,
    designated: watch::Receiver<bool>,
    lapsed: watch::Receiver<bool>,
    able: watch::Receiver<bool>,
    kernel: Option<Arc<KernelFence>>,
    wants: Arc<watch::Sender<bool>>,
    members: Arc<Mutex<Vec<bool>>>,
}

impl SharedFence {
    /// Groups in `shared` get one link for all their instances; others pass through.
    pub fn new(inner: Arc<dyn Fence>, shared: HashSet<String>) -> SharedFence {
        SharedFence {
            inner,
            shared,
            links: Mutex::new(HashMap::new()),
        }
    }
}

impl Fence for SharedFence {
    fn attach(&self, group: &str) -> FenceLink {
        if !self.shared.contains(group) {
            return self.inner.attach(group);
        }
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let share = links.entry(group.to_string()).or_insert_with(|| {
            let link = self.inner.attach(group);
            GroupShare {
                permit: link.permit,
                demoted: link.demoted,
                designated: link.designated,
                lapsed: link.lapsed,
                able: link.able,
                kernel: link.kernel,
                wants: Arc::new(link.wants),
                members: Arc::new(Mutex::new(Vec::new())),
            }
        });
        let slot = {
            let mut members = share.members.lock().unwrap_or_else(|e| e.into_inner());
            members.push(false);
            members.len() - 1
        };
        let (wants, mut member) = watch::channel(false);
        let (members, group_wants) = (share.members.clone(), share.wants.clone());
        tokio::spawn(async move {
            loop {
                // A member that is gone (its instance stopped) wants nothing any more.
                let now = match member.changed().await {
                    Ok(()) => *member.borrow_and_update(),
                    Err(_) => false,
                };
                let any = {
                    let mut all = members.lock().unwrap_or_else(|e| e.into_inner());
                    all[slot] = now;
                    all.iter().any(|w| *w)
                };
                group_wants.send_if_modified(|w| std::mem::replace(w, any) != any);
                if member.has_changed().is_err() {
                    break;
                }
            }
        });
        FenceLink {
            permit: share.permit.clone(),
            wants,
            demoted: share.demoted.clone(),
            designated: share.designated.clone(),
            lapsed: share.lapsed.clone(),
            kernel: share.kernel.clone(),
            able: share.able.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An inner fence that records the one link it hands out.
    struct Recording {
        wants: Mutex<Option<watch::Receiver<bool>>>,
        permit: watch::Sender<Permit>,
        attached: Mutex<u32>,
    }

    impl Fence for Recording {
        fn attach(&self, _group: &str) -> FenceLink {
            *self.attached.lock().unwrap() += 1;
            let (wants, rx) = watch::channel(false);
            *self.wants.lock().unwrap() = Some(rx);
            let (_, demoted) = watch::channel(false);
            let (_, designated) = watch::channel(false);
            let (_, lapsed) = watch::channel(false);
            let (_, able) = watch::channel(true);
            FenceLink {
                permit: self.permit.subscribe(),
                wants,
                demoted,
                designated,
                lapsed,
                kernel: None,
                able,
            }
        }
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn both_instances_share_one_lease_wanted_while_either_wants_it() {
        let (permit, _) = watch::channel(Permit::Denied);
        let inner = Arc::new(Recording {
            wants: Mutex::new(None),
            permit,
            attached: Mutex::new(0),
        });
        let fence = SharedFence::new(inner.clone(), HashSet::from(["dual".to_string()]));
        let v4 = fence.attach("dual");
        let mut v6 = fence.attach("dual");
        assert_eq!(
            *inner.attached.lock().unwrap(),
            1,
            "one lease link per group"
        );
        let group_wants = inner.wants.lock().unwrap().clone().unwrap();

        v4.wants.send(true).unwrap();
        settle().await;
        assert!(
            *group_wants.borrow(),
            "one instance wanting master wants the lease"
        );
        v6.wants.send(true).unwrap();
        v4.wants.send(false).unwrap();
        settle().await;
        assert!(
            *group_wants.borrow(),
            "still wanted while the other wants it"
        );
        v6.wants.send(false).unwrap();
        settle().await;
        assert!(!*group_wants.borrow(), "released when neither wants it");

        // Both see the same permit.
        inner
            .permit
            .send(Permit::Until(tokio::time::Instant::now()))
            .unwrap();
        v6.permit.changed().await.unwrap();
        assert_eq!(*v4.permit.borrow(), *v6.permit.borrow());

        // A stopped instance (its sender dropped) wants nothing any more.
        v4.wants.send(true).unwrap();
        settle().await;
        assert!(*group_wants.borrow());
        drop(v4);
        settle().await;
        assert!(
            !*group_wants.borrow(),
            "a gone instance no longer holds the lease"
        );
    }

    #[tokio::test]
    async fn other_groups_pass_through() {
        let (permit, _) = watch::channel(Permit::Denied);
        let inner = Arc::new(Recording {
            wants: Mutex::new(None),
            permit,
            attached: Mutex::new(0),
        });
        let fence = SharedFence::new(inner.clone(), HashSet::new());
        let _a = fence.attach("front");
        let _b = fence.attach("front");
        assert_eq!(*inner.attached.lock().unwrap(), 2);
    }
}
