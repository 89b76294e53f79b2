use tandem_balance::Health;

/// Debounces single check results: the state flips only after `rise` consecutive passes
/// (down → up) or `fall` consecutive failures (up → down). Starts up, like the pool.
#[derive(Clone, Debug)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    state: Health,
    streak: u32,
}

impl RiseFall {
    pub fn new(rise: u32, fall: u32) -> Self {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            state: Health::Up,
            streak: 0,
        }
    }

    /// A filter that starts from a known state instead of up.
    pub fn starting(rise: u32, fall: u32, state: Health) -> Self {
        RiseFall {
            state,
            ..Self::new(rise, fall)
        }
    }

    pub fn state(&self) -> Health {
        self.state
    }
    pub fn rise(&self) -> u32 {
        self.rise
    }
    pub fn fall(&self) -> u32 {
        self.fall
    }

    /// Feeds one result; returns the new state when it changes.
    pub fn observe(&mut self, passed: bool) -> Option<Health> {
        let agrees = matches!(
            (self.state, passed),
            (Health::Up, true) | (Health::Down, false)
        );
        if agrees {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if passed { self.rise } else { self.fall };
        if self.streak >= needed {
            self.state = if passed { Health::Up } else { Health::Down };
            self.streak = 0;
            Some(self.state)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_down_after_fall_and_up_after_rise() {
        let mut f = RiseFall::new(2, 3);
        assert_eq!(f.observe(false), None);
        assert_eq!(f.observe(false), None);
        assert_eq!(f.observe(false), Some(Health::Down));
        assert_eq!(f.observe(false), None);
        assert_eq!(f.observe(true), None);
        assert_eq!(f.observe(true), Some(Health::Up));
        assert_eq!(f.state(), Health::Up);
    }

    #[test]
    fn a_single_contrary_result_resets_the_streak() {
        let mut f = RiseFall::new(2, 3);
        f.observe(false);
        f.observe(false);
        assert_eq!(f.observe(true), None);
        assert_eq!(f.observe(false), None);
        assert_eq!(f.observe(false), None);
        assert_eq!(f.observe(false), Some(Health::Down));
        f.observe(true);
        f.observe(false);
        assert_eq!(f.observe(true), None, "streak restarted after the failure");
        assert_eq!(f.observe(true), Some(Health::Up));
    }

    #[test]
    fn a_filter_can_start_down() {
        let mut f = RiseFall::starting(2, 3, Health::Down);
        assert_eq!(f.observe(false), None);
        assert_eq!(f.observe(true), None);
        assert_eq!(f.observe(true), Some(Health::Up));
    }

    #[test]
    fn rise_and_fall_of_one_flip_at_once() {
        let mut f = RiseFall::new(1, 1);
        assert_eq!(f.observe(false), Some(Health::Down));
        assert_eq!(f.observe(true), Some(Health::Up));
    }
}
