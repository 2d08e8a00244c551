//! Password hashing: Argon2id with OWASP's recommended minimum, as PHC strings.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory cost in KiB (19 MiB): OWASP's minimum for Argon2id.
const MEMORY_COST_KIB: u32 = 19 * 1024;
/// Passes over memory; OWASP pairs 2 passes with 19 MiB.
const TIME_COST_PASSES: u32 = 2;
/// Lanes: one, so that one login occupies one core.
const PARALLELISM_LANES: u32 = 1;

fn hasher() -> Argon2<'static> {
    // The constants are valid, so `Params::new` cannot fail; the default is the same set anyway.
    let params = Params::new(MEMORY_COST_KIB, TIME_COST_PASSES, PARALLELISM_LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with Argon2id and a random salt into a PHC string.
///
/// Slow by design (tens of ms): call it from `spawn_blocking`. Returns an empty
/// string, an account that cannot log in, in the unreachable case that argon2
/// refuses its input.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    match hasher().hash_password(password.as_bytes(), &salt) {
        Ok(hash) => hash.to_string(),
        Err(error) => {
            tracing::error!(%error, "hashing a password failed");
            String::new()
        }
    }
}

/// Whether `password` matches the PHC string `phc` (with the parameters stored in it).
///
/// False for an empty or unparsable `phc`. Slow by design: call it from `spawn_blocking`.
pub fn verify_password(phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    hasher().verify_password(password.as_bytes(), &parsed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash_password("s3cret");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, "s3cret"));
        assert!(!verify_password(&phc, "s3cret "));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash_password("same"), hash_password("same"));
    }

    #[test]
    fn empty_or_garbage_hash_never_verifies() {
        assert!(!verify_password("", ""));
        assert!(!verify_password("$argon2id$garbage", "x"));
    }
}
