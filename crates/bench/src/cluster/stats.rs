//! The arithmetic of the cluster report: latency tallies of timed loops,
//! min/p50/p99/max of a handful of samples, and ratios that mean nothing when
//! the denominator is zero. Percentiles are nearest-rank, as in
//! [`crate::ops`].

use std::time::Duration;

use serde::Serialize;

use crate::ops::percentile_ms;

/// What the clients of one timed loop saw.
#[derive(Debug, Default)]
pub struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    pub fn success(&mut self, latency: Duration) {
        self.latencies_us.push(micros(latency));
    }

    pub fn failure(&mut self, describe: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(describe());
        }
    }

    pub fn absorb(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }

    /// Rates and percentiles over `seconds` of wall time.
    pub fn into_stats(mut self, seconds: f64) -> LatencyStats {
        self.latencies_us.sort_unstable();
        let ops = self.latencies_us.len() as u64;
        LatencyStats {
            ops,
            errors: self.errors,
            seconds,
            ops_per_sec: ops as f64 / seconds.max(f64::EPSILON),
            p50_ms: percentile_ms(&self.latencies_us, 0.50),
            p99_ms: percentile_ms(&self.latencies_us, 0.99),
            first_error: self.first_error,
        }
    }
}

/// Operations per second and latency of one timed loop.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyStats {
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The first failure, if any, for diagnosis.
    pub first_error: Option<String>,
}

/// Min, median, p99 and max of a few durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub samples: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Spread {
    /// `None` without samples.
    pub fn of(samples: &[Duration]) -> Option<Spread> {
        let mut sorted: Vec<u32> = samples.iter().copied().map(micros).collect();
        sorted.sort_unstable();
        let (first, last) = (*sorted.first()?, *sorted.last()?);
        Some(Spread {
            samples: sorted.len(),
            min_ms: f64::from(first) / 1000.0,
            p50_ms: percentile_ms(&sorted, 0.50),
            p99_ms: percentile_ms(&sorted, 0.99),
            max_ms: f64::from(last) / 1000.0,
        })
    }
}

/// `numerator ÷ denominator`, `None` where the quotient means nothing.
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0 && numerator >= 0.0 && numerator.is_finite() && denominator.is_finite())
        .then(|| numerator / denominator)
}

/// Microseconds, saturating at `u32::MAX` (71 minutes).
fn micros(duration: Duration) -> u32 {
    duration.as_micros().min(u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_merges_and_ranks() {
        let mut first = Tally::default();
        for ms in 1..=50 {
            first.success(Duration::from_millis(ms));
        }
        first.failure(|| "boom".to_owned());
        let mut second = Tally::default();
        for ms in 51..=100 {
            second.success(Duration::from_millis(ms));
        }
        second.failure(|| "later".to_owned());
        first.absorb(second);
        let stats = first.into_stats(2.0);
        assert_eq!((stats.ops, stats.errors), (100, 2));
        assert_eq!(stats.ops_per_sec, 50.0);
        assert_eq!((stats.p50_ms, stats.p99_ms), (50.0, 99.0));
        assert_eq!(stats.first_error.as_deref(), Some("boom"));
    }

    #[test]
    fn empty_tally_is_zero() {
        let stats = Tally::default().into_stats(0.0);
        assert_eq!((stats.ops, stats.errors, stats.p99_ms), (0, 0, 0.0));
        assert_eq!(stats.ops_per_sec, 0.0);
    }

    #[test]
    fn spread_of_failover_times() {
        assert_eq!(Spread::of(&[]), None);
        let samples: Vec<Duration> = [900, 450, 700, 1200, 600].into_iter().map(Duration::from_millis).collect();
        let spread = Spread::of(&samples).unwrap();
        assert_eq!(spread.samples, 5);
        assert_eq!((spread.min_ms, spread.p50_ms, spread.max_ms), (450.0, 700.0, 1200.0));
        // Nearest rank: with fewer than 100 samples p99 is the maximum.
        assert_eq!(spread.p99_ms, 1200.0);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(300.0, 150.0), Some(2.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(-1.0, 2.0), None);
        assert_eq!(ratio(f64::NAN, 2.0), None);
    }
}
