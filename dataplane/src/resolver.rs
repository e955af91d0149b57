//! The neighbour thread: keeps the workers' [`NeighbourTable`] in step with the kernel.
//!
//! Workers never talk to the kernel. When one misses a next hop it pushes a request on a
//! lock-free queue; this thread asks the kernel to resolve it (ARP), re-reads the routing and
//! neighbour tables of both families and publishes a new table when they changed. It also keeps real servers'
//! entries *managed* (the kernel re-resolves them on its own, so their MACs are always ready and
//! never go stale while we bypass the kernel's traffic confirmation). With the XDP fast path
//! on, it also keeps the program's next-hop MACs equal to each table it publishes
//! ([`NextHopSync`]).

use crate::fastpath::NextHopSync;
use crate::neigh::{KernelTables, NeighbourTable, Netlink};
use crate::publish::Publisher;
use crate::worker::ResolveRequest;
use crossbeam::channel::{self, Receiver, Sender};
use crossbeam::queue::ArrayQueue;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often tables are re-read when nothing is pending.
const REFRESH: Duration = Duration::from_millis(200);
/// How often while a resolution is pending (an ARP round trip is well under this).
const PENDING_REFRESH: Duration = Duration::from_millis(5);
/// How long a resolution counts as pending, and the least time between two requests for the
/// same address.
const PENDING_FOR: Duration = Duration::from_secs(1);

/// Changes to the set of managed (real server) entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Manage { ifindex: u32, addr: IpAddr },
    Unmanage { ifindex: u32, addr: IpAddr },
}

/// The running thread.
pub struct Resolver {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl Resolver {
    /// Reads the tables once (so workers start with them), then keeps them fresh in a thread
    /// until `shutdown`. The thread calls `thread_start` first (the daemon drops privileges
    /// there).
    pub fn spawn(
        ifindexes: Vec<u32>,
        mut publisher: Publisher<NeighbourTable>,
        requests: Arc<ArrayQueue<ResolveRequest>>,
        shutdown: Arc<AtomicBool>,
        thread_start: fn(),
        next_hops: Option<NextHopSync>,
    ) -> io::Result<Self> {
        let mut netlink = Netlink::open()?;
        let mut state = State {
            ifindexes,
            last: None,
            asked: HashMap::new(),
            next_hops,
        };
        state.refresh(&mut netlink, &mut publisher)?;
        let (commands, inbox) = channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("xvs-neigh".into())
            .spawn(move || {
                thread_start();
                state.run(netlink, publisher, inbox, requests, shutdown)
            })?;
        Ok(Resolver {
            commands,
            thread: Some(thread),
        })
    }

    /// Queues a change of managed entries (applied within one refresh period).
    pub fn send(&self, command: Command) {
        // The thread only stops at shutdown, when nobody cares any more.
        let _ = self.commands.send(command);
    }

    /// Waits for the thread (after shutdown was requested).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct State {
    ifindexes: Vec<u32>,
    last: Option<KernelTables>,
    asked: HashMap<(u32, IpAddr), Instant>,
    next_hops: Option<NextHopSync>,
}

impl State {
    fn run(
        mut self,
        mut netlink: Netlink,
        mut publisher: Publisher<NeighbourTable>,
        inbox: Receiver<Command>,
        requests: Arc<ArrayQueue<ResolveRequest>>,
        shutdown: Arc<AtomicBool>,
    ) {
        let mut last_refresh = Instant::now();
        while !shutdown.load(Ordering::Relaxed) {
            for command in inbox.try_iter() {
                let result = match command {
                    Command::Manage { ifindex, addr } => netlink.manage(ifindex, addr),
                    Command::Unmanage { ifindex, addr } => netlink.unmanage(ifindex, addr),
                };
                if let Err(e) = result {
                    eprintln!("xvsd: neighbour {command:?} failed: {e}");
                }
                // Read the tables again soon to pick up the change.
                last_refresh = last_refresh.checked_sub(REFRESH).unwrap_or(last_refresh);
            }
            let now = Instant::now();
            while let Some((ifindex, addr)) = requests.pop() {
                let recently = self
                    .asked
                    .get(&(ifindex, addr))
                    .is_some_and(|t| now.duration_since(*t) < PENDING_FOR);
                if !recently {
                    if let Err(e) = netlink.resolve(ifindex, addr) {
                        eprintln!("xvsd: cannot resolve {addr} on interface {ifindex}: {e}");
                    }
                    self.asked.insert((ifindex, addr), now);
                }
            }
            self.asked
                .retain(|_, t| now.duration_since(*t) < PENDING_FOR);
            let period = if self.asked.is_empty() {
                REFRESH
            } else {
                PENDING_REFRESH
            };
            if now.duration_since(last_refresh) >= period {
                if let Err(e) = self.refresh(&mut netlink, &mut publisher) {
                    eprintln!("xvsd: reading the neighbour table failed: {e}");
                }
                last_refresh = now;
            }
            publisher.collect();
            std::thread::sleep(PENDING_REFRESH);
        }
    }

    /// Re-reads routes and neighbours of both families; publishes a new table if they changed.
    fn refresh(
        &mut self,
        netlink: &mut Netlink,
        publisher: &mut Publisher<NeighbourTable>,
    ) -> io::Result<()> {
        let current = netlink.tables(&self.ifindexes)?;
        if self.last.as_ref() != Some(&current) {
            let table = NeighbourTable::from(current.clone());
            if let Some(sync) = self.next_hops.as_mut() {
                // Before the workers see the table: a flow they install then finds its MAC.
                if let Err(e) = sync.sync(&table) {
                    eprintln!("xvsd: updating the fast path's next hops failed: {e}");
                }
            }
            publisher.publish(table);
            self.last = Some(current);
        }
        Ok(())
    }
}
