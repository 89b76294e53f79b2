//! Response compression in the table of broken configs.

use super::{assert_all_refused, GOOD};
use tandem_config::parse;

#[test]
fn compression_mistakes_are_refused_with_their_key_path() {
    let http = GOOD.replace("pool = \"web\"\n", "pool = \"web\"\nprotocol = \"http\"\n");
    let listener = |c: &str| {
        http.replace(
            "protocol = \"http\"\n",
            &format!("protocol = \"http\"\ncompression = {{ {c} }}\n"),
        )
    };
    let route = |c: &str| {
        http.replace(
            "protocol = \"http\"\n",
            &format!("protocol = \"http\"\n[[listener.route]]\npath_prefix = \"/api\"\n{c}\n"),
        )
    };
    let cases = [
        (
            listener("algorithms = [\"lzma\"]"),
            "listener[0].compression.algorithms[0]",
            "unknown encoding \"lzma\"",
        ),
        (
            listener("algorithms = [\"br\", \"br\"]"),
            "listener[0].compression.algorithms[1]",
            "listed twice",
        ),
        (
            listener("algorithms = []"),
            "listener[0].compression.algorithms",
            "at least one",
        ),
        (
            listener("min_size = 2000000000"),
            "listener[0].compression.min_size",
            "more than 1 GiB",
        ),
        (
            listener("min_size = -1"),
            "listener[0].compression.min_size",
            "",
        ),
        (
            listener("content_types = [\"text/html \"]"),
            "listener[0].compression.content_types[0]",
            "not a media type pattern",
        ),
        (
            listener("content_types = [\"*/*\"]"),
            "listener[0].compression.content_types[0]",
            "not a media type pattern",
        ),
        (
            listener("content_types = [\"application/*json\"]"),
            "listener[0].compression.content_types[0]",
            "not a media type pattern",
        ),
        (
            listener("level = { br = 12 }"),
            "listener[0].compression.level.br",
            "between 0 and 11",
        ),
        (
            listener("level = { zstd = 0 }"),
            "listener[0].compression.level.zstd",
            "between 1 and 19",
        ),
        (
            listener("level = { deflate = 1 }"),
            "listener[0].compression.level.deflate",
            "unknown field `deflate`",
        ),
        (
            listener("algorithm = [\"gzip\"]"),
            "listener[0].compression.algorithm",
            "unknown field `algorithm`",
        ),
        (
            route("respond = { status = 200 }\ncompression = {}"),
            "listener[0].route[0].compression",
            "only for routes with a pool",
        ),
        (
            GOOD.replace("pool = \"web\"\n", "pool = \"web\"\ncompression = {}\n"),
            "listener[0].compression",
            "only for protocol = \"http\" listeners",
        ),
    ];
    assert_all_refused(cases);

    // The defaults, a full table and a route's own survive a round trip through TOML.
    let good = listener(
        "algorithms = [\"gzip\", \"br\"], min_size = 0, content_types = [\"text/*\", \"Application/JSON\"], level = { gzip = 9, br = 0, zstd = 19 }",
    )
    .replace(
        "[[pool]]",
        "[[listener.route]]\npath_prefix = \"/raw\"\npool = \"web\"\ncompression = { enabled = false, algorithms = [] }\n\n[[pool]]",
    );
    let cfg = parse(&good, "good.toml").unwrap_or_else(|e| panic!("{e}"));
    let c = cfg.cluster.listeners[0].compression.clone().unwrap();
    assert_eq!(c.algorithms, ["gzip", "br"]);
    assert_eq!(c.level.zstd(), 19);
    assert!(
        !cfg.cluster.listeners[0].routes[0]
            .compression
            .as_ref()
            .unwrap()
            .enabled
    );
    let again =
        parse(&tandem_config::to_toml(&cfg), "again.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.cluster.listeners, cfg.cluster.listeners);
    let defaults = parse(&listener(""), "defaults.toml").unwrap();
    let d = defaults.cluster.listeners[0].compression.clone().unwrap();
    assert_eq!(d, tandem_config::compression::Compression::default());
    assert_eq!(
        (d.min_size, d.level.gzip(), d.level.br(), d.level.zstd()),
        (1024, 6, 4, 3)
    );
}
