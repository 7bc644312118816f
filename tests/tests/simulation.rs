//! S13 under faults, in simulation (tests/src/sim.rs): two real sync
//! engines and real relay services in memory, 10,000 seeded schedules of
//! lost requests and answers, redelivered and reordered envelopes, client
//! crashes before acks, relay restarts and expired envelopes. Each must end
//! with every message shown exactly once and resending stopped.
//!
//! A failing seed is printed; add it to `simulation-regressions.txt` so it
//! runs first from then on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Instant;

use tropa_tests::sim::Sim;

/// Schedules per run; `TROPA_SIM_SCHEDULES` sets another number (a longer
/// run by hand, a short one while debugging).
fn schedules() -> u64 {
    std::env::var("TROPA_SIM_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
const STEPS: u32 = 150;

fn regressions() -> Vec<u64> {
    include_str!("simulation-regressions.txt")
        .lines()
        .filter_map(|l| l.split('#').next())
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn run(seed: u64) -> tropa_tests::sim::Outcomes {
    match std::panic::catch_unwind(|| Sim::new(seed).run(STEPS)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "simulation seed {seed} failed; add it to tests/tests/simulation-regressions.txt"
            );
            std::panic::resume_unwind(e)
        }
    }
}

#[test]
fn a_seed_replays_the_same_schedule() {
    for seed in [1, 2, 3] {
        assert_eq!(run(seed).trace, run(seed).trace, "seed {seed}");
    }
}

#[test]
fn every_message_arrives_exactly_once_under_faults() {
    let start = Instant::now();
    let schedules = schedules();
    for seed in regressions() {
        run(seed);
    }
    // Two threads: the machine has two cores, and the schedules are independent.
    let halves: Vec<_> = (0..2u64)
        .map(|half| {
            std::thread::spawn(move || {
                let (mut texts, mut faults, mut steps, mut envelopes) = (0, 0, 0, 0);
                for seed in (half..schedules).step_by(2) {
                    let o = run(seed);
                    texts += o.sent[0].len() + o.sent[1].len();
                    faults += u64::from(o.faults);
                    steps += u64::from(o.steps);
                    envelopes += u64::from(o.envelopes);
                }
                (texts, faults, steps, envelopes)
            })
        })
        .collect();
    let (mut texts, mut faults, mut steps, mut envelopes) = (0, 0, 0, 0);
    for h in halves {
        let (t, f, s, e) = h.join().expect("no schedule failed");
        texts += t;
        faults += f;
        steps += s;
        envelopes += e;
    }
    eprintln!(
        "{schedules} schedules, {texts} texts, {faults} faults, {steps} steps, \
         {envelopes} envelopes deposited or delivered, in {:?}",
        start.elapsed()
    );
    assert!(texts > schedules as usize, "the schedules must send texts");
    assert!(faults > schedules, "the schedules must inject faults");
}
