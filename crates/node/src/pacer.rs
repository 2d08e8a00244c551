//! Keeps background copying under a rate: repair, scrub and rebalancing call
//! [`Pacer::spend`] after each blob and sleep while ahead of the budget, so
//! pushes and pulls keep the disk and the network.

use std::time::{Duration, Instant};

/// A budget of units (bytes) per second, measured from the pacer's creation.
#[derive(Debug)]
pub struct Pacer {
    rate: Option<u64>,
    started: Instant,
    spent: u64,
}

impl Pacer {
    /// A pacer allowing `rate` units per second; `None` never waits.
    pub fn new(rate: Option<u64>) -> Self {
        Pacer { rate: rate.filter(|rate| *rate > 0), started: Instant::now(), spent: 0 }
    }

    /// Records `amount` spent and sleeps until the budget allows it.
    pub async fn spend(&mut self, amount: u64) {
        self.spent = self.spent.saturating_add(amount);
        let wait = self.ahead_by(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// How far the spending is ahead of the budget at `now`.
    fn ahead_by(&self, now: Instant) -> Duration {
        let Some(rate) = self.rate else { return Duration::ZERO };
        let due = Duration::from_secs_f64(self.spent as f64 / rate as f64);
        due.saturating_sub(now.saturating_duration_since(self.started))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spending_ahead_of_the_rate_waits_for_the_difference() {
        let mut pacer = Pacer::new(Some(1000));
        pacer.spent = 3000;
        let at = pacer.started + Duration::from_secs(1);
        assert_eq!(pacer.ahead_by(at), Duration::from_secs(2));
        assert_eq!(pacer.ahead_by(pacer.started + Duration::from_secs(5)), Duration::ZERO);
    }

    #[test]
    fn no_rate_or_a_zero_rate_never_waits() {
        for rate in [None, Some(0)] {
            let mut pacer = Pacer::new(rate);
            pacer.spent = u64::MAX;
            assert_eq!(pacer.ahead_by(pacer.started), Duration::ZERO);
        }
    }

    #[tokio::test]
    async fn a_spend_sleeps_until_the_budget_catches_up() {
        let mut pacer = Pacer::new(Some(1000));
        pacer.spend(150).await;
        assert!(pacer.started.elapsed() >= Duration::from_millis(149));
    }
}
