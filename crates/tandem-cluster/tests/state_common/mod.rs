//! Config texts shared by the state tests.

/// The cluster part of a config file: one HTTP listener on pool "app", which has a
/// source-IP sticky table of `max_entries` and the given backends.
pub fn cluster(version: u64, max_entries: u32, backends: &[&str]) -> String {
    let mut text = format!(
        "version = {version}\n\n[[listener]]\nname = \"web\"\nprotocol = \"http\"\n\
         bind = \"0.0.0.0:8080\"\npool = \"app\"\n\n[[pool]]\nname = \"app\"\n\
         [pool.http]\nsticky = {{ kind = \"source_ip\", ttl = \"30m\", max_entries = {max_entries} }}\n"
    );
    for (i, id) in backends.iter().enumerate() {
        text += &format!(
            "[[pool.backend]]\nid = \"{id}\"\naddress = \"192.0.2.{}:8080\"\n",
            10 + i
        );
    }
    text
}
