//! The operator's config: TOML text through parsing and validation (what check-config
//! and a reload run) never panics, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = tandem_config::parse(text, "fuzz.toml") {
            let _ = tandem_config::validate_config(&config);
            // What a node writes back (the replicated config) parses again.
            let again = tandem_config::to_toml(&config);
            tandem_config::parse(&again, "fuzz-again.toml")
                .expect("a parsed config written back parses again");
        }
    }
});
