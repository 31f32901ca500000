//! The `.ts` reader must answer any text with a dataset or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use seqnet_data::{parse_ts, MissingPolicy, TsOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for missing in [MissingPolicy::Error, MissingPolicy::Zero, MissingPolicy::Interpolate] {
        let _ = parse_ts(&text, "fuzz.ts", &TsOptions { missing });
    }
});
