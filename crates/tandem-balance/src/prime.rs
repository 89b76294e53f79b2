//! Prime helpers for the Maglev table size.
//!
//! Maglev's permutation (offset + j·skip mod M) only visits every slot when
//! M is prime, so a non-prime configured size is rounded up to a prime.

/// Largest table we will build: bounds memory (4 bytes per slot) whatever
/// the configuration says. The next prime above 2^24.
pub(crate) const MAX_TABLE_SIZE: usize = 16_777_259;

pub(crate) fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let mut d = 5usize;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

/// Smallest prime ≥ `n`, capped at [`MAX_TABLE_SIZE`].
pub(crate) fn next_prime(n: usize) -> usize {
    let mut c = n.clamp(2, MAX_TABLE_SIZE);
    while !is_prime(c) {
        c += 1;
    }
    c.min(MAX_TABLE_SIZE)
}

/// The table size actually used: the configured size if it is a prime that
/// can hold every backend, else the next prime ≥ max(size, backends, 2).
pub(crate) fn table_size(configured: usize, backends: usize) -> usize {
    let wanted = configured.max(backends).max(2);
    if wanted == configured && is_prime(configured) && configured <= MAX_TABLE_SIZE {
        configured
    } else {
        next_prime(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let small: Vec<usize> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, vec![2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65537));
        assert!(is_prime(5003));
        assert!(is_prime(MAX_TABLE_SIZE));
        assert!(!is_prime(65535));
    }

    #[test]
    fn sizes() {
        assert_eq!(table_size(65537, 3), 65537);
        assert_eq!(table_size(65536, 3), 65537);
        assert_eq!(table_size(0, 0), 2);
        assert_eq!(table_size(1, 0), 2);
        assert_eq!(table_size(7, 10), 11);
        assert_eq!(table_size(usize::MAX, 3), MAX_TABLE_SIZE);
    }
}
