//! The DNS page's hour of history: roost-dns's `/metrics` counters sampled once a minute into a
//! ring of [`SAMPLES`], turned into per-minute query rates and cache hit ratios.

use std::collections::VecDeque;
use std::time::Duration;

/// Samples kept: one hour of minutes plus the one each difference starts from.
pub const SAMPLES: usize = 61;
/// How often the sampler reads the counters.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// One reading of the resolver's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// Queries received (UDP and TCP) since the resolver started.
    pub queries: u64,
    /// Of which answered from the cache.
    pub hits: u64,
}

/// One minute of the chart.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Point {
    /// End of the interval, seconds since the Unix epoch.
    pub at: u64,
    /// Queries per second over the interval.
    pub queries_per_second: f64,
    /// Share of queries answered from the cache, 0 to 1 (0 when there were none).
    pub hit_ratio: f64,
}

/// The last hour of samples.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Adds a reading; the oldest beyond [`SAMPLES`] is dropped.
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// Rates between consecutive samples. A counter that went down (the resolver restarted)
    /// counts from zero.
    pub fn points(&self) -> Vec<Point> {
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(a, b)| {
                let restarted = b.queries < a.queries || b.hits < a.hits;
                let (q, h) = if restarted {
                    (b.queries, b.hits)
                } else {
                    (b.queries - a.queries, b.hits - a.hits)
                };
                let seconds = b.at.saturating_sub(a.at).max(1) as f64;
                Point {
                    at: b.at,
                    queries_per_second: q as f64 / seconds,
                    hit_ratio: if q == 0 {
                        0.0
                    } else {
                        (h as f64 / q as f64).min(1.0)
                    },
                }
            })
            .collect()
    }
}

/// Reads a sample from roost-dns's Prometheus text; `None` when the counters are missing.
pub fn parse_metrics(text: &str, at: u64) -> Option<Sample> {
    let value = |name: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (n, v) = l.split_once(' ')?;
                (n == name).then(|| v.trim().parse::<f64>().ok()).flatten()
            })
            .map(|v| v as u64)
    };
    let udp = value("roost_dns_udp_queries_total")?;
    let tcp = value("roost_dns_tcp_queries_total")?;
    let hits = value("roost_dns_cache_hits_total")?;
    Some(Sample {
        at,
        queries: udp + tcp,
        hits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_resolver_counters() {
        let text = "# HELP roost_dns_udp_queries_total UDP queries received.\n\
                    # TYPE roost_dns_udp_queries_total counter\n\
                    roost_dns_udp_queries_total 90\n\
                    roost_dns_tcp_queries_total 10\n\
                    roost_dns_cache_hits_total 75\n";
        assert_eq!(
            parse_metrics(text, 7),
            Some(Sample {
                at: 7,
                queries: 100,
                hits: 75
            })
        );
        assert_eq!(parse_metrics("roost_dns_udp_queries_total 1\n", 7), None);
    }

    #[test]
    fn points_are_per_second_rates_and_ratios_and_survive_a_restart() {
        let mut h = History::default();
        h.push(Sample {
            at: 0,
            queries: 0,
            hits: 0,
        });
        h.push(Sample {
            at: 60,
            queries: 600,
            hits: 300,
        });
        h.push(Sample {
            at: 120,
            queries: 600,
            hits: 300,
        });
        // The resolver restarted: its counters began again.
        h.push(Sample {
            at: 180,
            queries: 120,
            hits: 90,
        });
        let p = h.points();
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].queries_per_second, p[0].hit_ratio), (10.0, 0.5));
        assert_eq!((p[1].queries_per_second, p[1].hit_ratio), (0.0, 0.0));
        assert_eq!((p[2].queries_per_second, p[2].hit_ratio), (2.0, 0.75));
    }

    #[test]
    fn keeps_one_hour() {
        let mut h = History::default();
        for i in 0..200 {
            h.push(Sample {
                at: i * 60,
                queries: i,
                hits: 0,
            });
        }
        let p = h.points();
        assert_eq!(p.len(), SAMPLES - 1);
        assert_eq!(p.last().map(|p| p.at), Some(199 * 60));
    }
}
