//! `relay.toml` as an operator may write it: a typed error naming the line
//! (never a panic, whatever the bytes), and whatever parses is written back
//! by `to_commented_toml` to text that parses to the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tropa_relay::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "relay.toml") {
        Ok(cfg) => {
            let _ = cfg.public_host_warning();
            let _ = cfg.validate();
            if let Ok(written) = cfg.to_commented_toml() {
                let back = Config::parse(&written, "relay.toml").expect("written config parses");
                assert_eq!(back, cfg);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
