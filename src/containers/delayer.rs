//! The packet delayer (`shakedown serve delay`): `latency` on a stack whose services we do not
//! run ourselves, without netem (this kernel has none). It runs in a helper container that joins
//! one service's network namespace (Pumba's way, as the partitions of `compose::net`); there it
//!
//! 1. binds an NFQUEUE (the kernel hands it every queued packet and waits for a verdict),
//! 2. adds a chain of its own to the `filter` table's OUTPUT that queues what the service sends
//!    to the far side's addresses (`--queue-bypass`: should the delayer die, packets flow
//!    undelayed instead of vanishing),
//! 3. accepts each packet once it is due: `max(arrival + delay + U(0, jitter), previous due)` —
//!    the link proxy's rule, so order is kept and a delayed flow keeps its throughput,
//! 4. on SIGTERM or SIGINT deletes its chain first, then lets every held packet go at once, and
//!    prints `delayed N packets` (the fault's `messages_held_count`).
//!
//! Unlike the link proxy, which sees only connections made through it, this delays every packet
//! on the path — connections opened before the fault, pools, UDP — as netem would. A fault
//! between two sides runs one delayer per service: each direction is delayed once, so a round
//! trip grows by twice the delay, as on the built-in stack.
//!
//! The delayer polls (the queue's socket is not exposed for readiness), every [`TICK`]: a packet
//! is released up to that much late.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::process::Command;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

/// How often the queue is read and due packets released.
pub const TICK: Duration = Duration::from_millis(1);
/// Most packets the kernel holds for the queue before it drops new ones (netem's `limit` is
/// 1000; a delayed busy link needs more).
const QUEUE_MAX: u32 = 65_536;

/// What one delayer does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelaySpec {
    /// The NFQUEUE number, unique in the namespace; also names the chain (`sd-latN`).
    pub queue: u16,
    /// Packets to these addresses are delayed.
    pub to: Vec<String>,
    /// Added delay per packet.
    pub delay: Duration,
    /// Extra random delay, uniform in `0..jitter`.
    pub jitter: Duration,
    /// Seeds the jitter's draws.
    pub seed: u64,
}

impl DelaySpec {
    /// The chain this delayer owns.
    pub fn chain(&self) -> String {
        format!("sd-lat{}", self.queue)
    }

    /// The iptables commands that route the packets to the queue (run in this order).
    pub fn install(&self) -> Vec<Vec<String>> {
        let chain = self.chain();
        let mut commands = vec![args(&["-w", "-N", &chain])];
        for address in &self.to {
            let queue = self.queue.to_string();
            commands.push(args(&[
                "-w",
                "-A",
                &chain,
                "-d",
                address,
                "-j",
                "NFQUEUE",
                "--queue-num",
                &queue,
                "--queue-bypass",
            ]));
        }
        commands.push(args(&["-w", "-I", "OUTPUT", "1", "-j", &chain]));
        commands
    }

    /// The iptables commands that remove them again (failures ignored: a namespace may be gone).
    pub fn uninstall(&self) -> Vec<Vec<String>> {
        let chain = self.chain();
        vec![
            args(&["-w", "-D", "OUTPUT", "-j", &chain]),
            args(&["-w", "-F", &chain]),
            args(&["-w", "-X", &chain]),
        ]
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// When each packet is due (pure): after its arrival plus the delay and a jitter draw, and never
/// before the one ahead of it.
pub struct Schedule {
    delay: Duration,
    jitter: Duration,
    rng: ChaCha8Rng,
    last: Option<Instant>,
}

impl Schedule {
    /// A schedule for `spec`'s delay and jitter.
    pub fn new(spec: &DelaySpec) -> Schedule {
        Schedule {
            delay: spec.delay,
            jitter: spec.jitter,
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            last: None,
        }
    }

    /// The due time of a packet that arrived at `now`.
    pub fn due(&mut self, now: Instant) -> Instant {
        let jitter = match self.jitter.as_micros() as u64 {
            0 => Duration::ZERO,
            micros => Duration::from_micros(self.rng.random_range(0..micros)),
        };
        let due = (now + self.delay + jitter).max(self.last.unwrap_or(now));
        self.last = Some(due);
        due
    }
}

/// Run the delayer until SIGTERM or SIGINT; the packets it delayed.
pub async fn run(spec: DelaySpec) -> Result<u64, String> {
    let mut queue = open(spec.queue)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    if let Err(error) = iptables_all(&spec.install()) {
        let _ = iptables_all(&spec.uninstall());
        return Err(error);
    }
    eprintln!(
        "delaying packets to {} by {} ms (+ up to {} ms), queue {}",
        spec.to.join(" "),
        spec.delay.as_millis(),
        spec.jitter.as_millis(),
        spec.queue
    );
    let mut schedule = Schedule::new(&spec);
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    let mut delayed = 0u64;
    let outcome = loop {
        if let Err(error) = receive(&mut queue, &mut schedule, &mut held, &mut delayed) {
            break Err(error);
        }
        if let Err(error) = release(&mut queue, &mut held, Some(Instant::now())) {
            break Err(error);
        }
        tokio::select! {
            biased;
            _ = terminate.recv() => break Ok(()),
            _ = interrupt.recv() => break Ok(()),
            _ = tokio::time::sleep(TICK) => {}
        }
    };
    // The chain goes first, so nothing new is queued; then what was queued meanwhile and what
    // is held go out at once.
    let uninstalled = iptables_all(&spec.uninstall());
    let _ = receive(&mut queue, &mut schedule, &mut held, &mut delayed);
    let released = release(&mut queue, &mut held, None);
    outcome?;
    uninstalled?;
    released?;
    println!("delayed {delayed} packets");
    Ok(delayed)
}

/// The queue, bound with metadata only copied (the verdict needs the packet id, not its bytes).
fn open(number: u16) -> Result<nfq::Queue, String> {
    let context = |what: &str, e: std::io::Error| format!("NFQUEUE {number}: {what}: {e}");
    let mut queue = nfq::Queue::open().map_err(|e| context("open", e))?;
    queue.bind(number).map_err(|e| context("bind (is NET_ADMIN granted?)", e))?;
    queue.set_copy_range(number, 0).map_err(|e| context("copy range", e))?;
    queue.set_queue_max_len(number, QUEUE_MAX).map_err(|e| context("queue length", e))?;
    queue.set_fail_open(number, false).map_err(|e| context("fail open", e))?;
    queue.set_nonblocking(true);
    Ok(queue)
}

/// Take every packet waiting in the queue and schedule it.
fn receive(
    queue: &mut nfq::Queue,
    schedule: &mut Schedule,
    held: &mut VecDeque<(Instant, nfq::Message)>,
    delayed: &mut u64,
) -> Result<(), String> {
    loop {
        match queue.recv() {
            Ok(message) => {
                held.push_back((schedule.due(Instant::now()), message));
                *delayed += 1;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return Ok(());
            }
            Err(e) => return Err(format!("NFQUEUE receive: {e}")),
        }
    }
}

/// Accept the held packets due by `now` (every one when `now` is `None`).
fn release(
    queue: &mut nfq::Queue,
    held: &mut VecDeque<(Instant, nfq::Message)>,
    now: Option<Instant>,
) -> Result<(), String> {
    while held.front().is_some_and(|(due, _)| now.is_none_or(|now| *due <= now)) {
        let (_, mut message) = held.pop_front().expect("a front");
        message.set_verdict(nfq::Verdict::Accept);
        queue.verdict(message).map_err(|e| format!("NFQUEUE verdict: {e}"))?;
    }
    Ok(())
}

/// Run each iptables command in turn; the first failure, with its output.
fn iptables_all(commands: &[Vec<String>]) -> Result<(), String> {
    for command in commands {
        let output = Command::new("iptables")
            .args(command)
            .output()
            .map_err(|e| format!("iptables {}: {e} (the helper image needs iptables)", command.join(" ")))?;
        if !output.status.success() {
            return Err(format!(
                "iptables {} exited {}: {}",
                command.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(delay_ms: u64, jitter_ms: u64) -> DelaySpec {
        DelaySpec {
            queue: 3,
            to: vec!["10.0.0.2".into(), "10.1.0.2".into()],
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
            seed: 7,
        }
    }

    // Goal: a packet is due after the delay, with jitter inside its bound, and never before the
    // packet ahead of it (order is kept even when a draw is smaller).
    #[test]
    fn packets_are_due_after_the_delay_in_order() {
        let start = Instant::now();
        let mut plain = Schedule::new(&spec(100, 0));
        assert_eq!(plain.due(start), start + Duration::from_millis(100));
        let later = start + Duration::from_millis(5);
        assert_eq!(plain.due(later), later + Duration::from_millis(100));

        let mut jittery = Schedule::new(&spec(100, 50));
        let mut previous = start;
        for step in 0..200u64 {
            let now = start + Duration::from_micros(step * 100);
            let due = jittery.due(now);
            assert!(due >= now + Duration::from_millis(100), "delay kept");
            assert!(due >= previous, "order kept");
            assert!(due < now + Duration::from_millis(150) || due == previous, "jitter bounded");
            previous = due;
        }
    }

    // Goal: the same seed draws the same jitter (a run's fault plan is reproducible); another
    // seed draws other values.
    #[test]
    fn jitter_draws_follow_the_seed() {
        let start = Instant::now();
        let draws = |seed: u64| {
            let mut schedule = Schedule::new(&DelaySpec { seed, ..spec(10, 40) });
            (0..20u64).map(|i| schedule.due(start + Duration::from_secs(i)) - start).collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
    }

    // Goal: the rules live in the delayer's own chain, queue only what goes to the far side,
    // bypass the queue if the delayer is gone, touch only the filter table, and are undone in
    // the reverse order.
    #[test]
    fn rules_queue_only_the_far_side_in_a_chain_of_their_own() {
        let spec = spec(100, 0);
        let install: Vec<String> = spec.install().iter().map(|c| c.join(" ")).collect();
        assert_eq!(install[0], "-w -N sd-lat3");
        assert_eq!(install[1], "-w -A sd-lat3 -d 10.0.0.2 -j NFQUEUE --queue-num 3 --queue-bypass");
        assert_eq!(install[2], "-w -A sd-lat3 -d 10.1.0.2 -j NFQUEUE --queue-num 3 --queue-bypass");
        assert_eq!(install[3], "-w -I OUTPUT 1 -j sd-lat3");
        let uninstall: Vec<String> = spec.uninstall().iter().map(|c| c.join(" ")).collect();
        assert_eq!(uninstall, ["-w -D OUTPUT -j sd-lat3", "-w -F sd-lat3", "-w -X sd-lat3"]);
        assert!(install.iter().chain(&uninstall).all(|c| !c.contains("-t ")));
    }
}
