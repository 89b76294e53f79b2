//! The config parser must never panic, whatever the bytes.
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = tandem_config::parse(&text, "fuzz.toml");
    }

    #[test]
    fn mutated_good_configs_never_panic(cut in 0usize..400, insert in "[\\[\\]=\"a-z0-9._:\n -]{0,12}") {
        let base = "[node]\nid = \"n\"\n[[listener]]\nname = \"l\"\nbind = \"127.0.0.1:80\"\npool = \"p\"\nidle_timeout = \"1m\"\n[[pool]]\nname = \"p\"\nalgorithm = \"random\"\n[pool.health_check]\nkind = \"http\"\n[[pool.backend]]\nid = \"a\"\naddress = \"127.0.0.1:1\"\nweight = 2\n";
        let at = cut.min(base.len());
        let at = (0..=at).rev().find(|i| base.is_char_boundary(*i)).unwrap_or(0);
        let text = format!("{}{}{}", &base[..at], insert, &base[at..]);
        let _ = tandem_config::parse(&text, "fuzz.toml");
    }
}
