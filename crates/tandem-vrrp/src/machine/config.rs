//! Per-instance configuration and its validation.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// The priority of the router that owns the virtual addresses (RFC 5798 section 5.2.4).
pub const OWNER_PRIORITY: u8 = 255;
/// The shortest advertisement interval the 12-bit centisecond field can carry.
pub const MIN_ADVERT_INTERVAL: Duration = Duration::from_millis(10);
/// The longest advertisement interval the 12-bit centisecond field can carry (4095 cs).
pub const MAX_ADVERT_INTERVAL: Duration = Duration::from_millis(40_950);

/// What one VRRP instance is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceConfig {
    /// Operator-facing name, for logs.
    pub name: String,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// Base priority, 1..=255; 255 means we own the addresses and is never adjusted.
    pub priority: u8,
    /// Our advertisement interval; sent in centiseconds (1..=4095 cs).
    pub advert_interval: Duration,
    /// Whether a higher-priority Backup takes over from a lower-priority Master.
    /// The address owner (255) always preempts, whatever this says (RFC 5798 section 6.1).
    pub preempt: bool,
    /// After startup (or the interface coming back up), a Backup does not preempt a
    /// lower-priority Master until this much time has passed. ZERO = no delay.
    pub preempt_delay: Duration,
    /// This node's address on the interface; the tie-break on equal priority.
    pub primary_ip: IpAddr,
}

impl InstanceConfig {
    /// A config with the usual defaults: 1 s interval, preempt on, no preempt delay.
    pub fn new(
        name: impl Into<String>,
        vrid: u8,
        priority: u8,
        primary_ip: impl Into<IpAddr>,
    ) -> Self {
        InstanceConfig {
            name: name.into(),
            vrid,
            priority,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_ip: primary_ip.into(),
        }
    }

    /// Checks the ranges the wire format and the RFC allow. [`crate::machine::Instance::new`]
    /// never fails and clamps instead, so call this where a config is loaded to report errors.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::VridZero);
        }
        if self.priority == 0 {
            return Err(ConfigError::PriorityZero);
        }
        let i = self.advert_interval;
        if !(MIN_ADVERT_INTERVAL..=MAX_ADVERT_INTERVAL).contains(&i) {
            return Err(ConfigError::IntervalOutOfRange(i));
        }
        if !i.as_nanos().is_multiple_of(10_000_000) {
            return Err(ConfigError::IntervalNotCentiseconds(i));
        }
        Ok(())
    }

    /// The interval as carried in the advertisement's Max Adver Int field.
    pub fn advert_interval_cs(&self) -> u16 {
        duration_to_cs(self.advert_interval)
    }

    /// The owner never has its priority adjusted and always preempts.
    pub fn is_owner(&self) -> bool {
        self.priority == OWNER_PRIORITY
    }

    /// Brings out-of-range values into range so the machine never divides by zero or
    /// advertises an interval different from the one it runs its timers with.
    pub(crate) fn normalized(mut self) -> Self {
        self.priority = self.priority.max(1);
        self.advert_interval = cs_to_duration(duration_to_cs(self.advert_interval));
        self
    }
}

/// Whole centiseconds, clamped to the 12-bit field's 1..=4095.
pub(crate) fn duration_to_cs(d: Duration) -> u16 {
    let cs = d.as_millis() / 10;
    cs.clamp(1, 4095) as u16
}

/// An interval from centiseconds; 0 (not valid on the wire) is read as 1 cs so a broken
/// peer cannot make our Master_Down_Interval zero.
pub(crate) fn cs_to_duration(cs: u16) -> Duration {
    Duration::from_millis(u64::from(cs.clamp(1, 4095)) * 10)
}

/// Why an [`InstanceConfig`] is not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    VridZero,
    PriorityZero,
    IntervalOutOfRange(Duration),
    IntervalNotCentiseconds(Duration),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::VridZero => write!(f, "vrid must be 1..=255, not 0"),
            ConfigError::PriorityZero => {
                write!(f, "priority must be 1..=255 (0 is reserved for 'leaving')")
            }
            ConfigError::IntervalOutOfRange(d) => {
                write!(f, "advert interval {d:?} is outside 10ms..=40.95s")
            }
            ConfigError::IntervalNotCentiseconds(d) => {
                write!(
                    f,
                    "advert interval {d:?} is not a whole number of centiseconds"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}
